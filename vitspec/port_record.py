"""A pytest plugin that `vitspec ports` loads into each `vitspec verify` run (PYTEST_PLUGINS=vitspec.port_record): it
keeps verify's own per-stage counts (vitspec.verify.Collector) and writes them as JSON to $VITSPEC_PORT_RECORD at
the end of the session, for vitspec.ports to turn into a results file. Inert when that variable is unset."""

from __future__ import annotations

import io
import json
import os

from vitspec.verify import Collector, failure_excerpt

_collector = Collector(stream=io.StringIO())


def pytest_configure(config):
    if os.environ.get("VITSPEC_PORT_RECORD"):
        config.pluginmanager.register(_collector, "vitspec-port-record-collector")


def pytest_sessionfinish(session):
    path = os.environ.get("VITSPEC_PORT_RECORD")
    if not path:
        return
    from vitspec.spec.protocol import provided_stages

    target = getattr(session.config, "_vitspec_target", None)
    provided = provided_stages(target) if target is not None else None
    table = _collector.table(provided)
    reasons = _collector.skip_reasons(provided) if hasattr(_collector, "skip_reasons") else {}
    helpers = _collector.reference_helpers()
    stages: dict = {}
    for row, counts in table.get("target", {}).items():
        stages[row] = {
            "counts": dict(counts),
            "reasons": dict(reasons.get(row, {})),
            "differences": [],
            "failures": [],
            "helpers": dict(helpers.get(row, {})),
        }
    target_rows = {node: [r for g, r in rows if g == "target"] for node, rows in _collector.rows.items()}
    for diffs in _collector.differences.values():
        for d in diffs:
            row = d.split(":", 1)[0].strip()
            if row in stages and d not in stages[row]["differences"]:
                stages[row]["differences"].append(d)
    for node, text in _collector.failures:
        named = _collector.failed_stages.get(node) or set(target_rows.get(node, ()))
        for row in named:
            if row in stages:
                stages[row]["failures"].append({"test": node, "message": failure_excerpt(text, 12)})
    not_covered_reasons = {}
    if target is not None:
        from vitspec.spec.protocol import capabilities

        try:
            caps = capabilities(target)
            not_covered_reasons = dict(caps.inline)
        except Exception as e:  # a bad declaration is reported, not hidden
            not_covered_reasons = {"*": f"capabilities: {e}"}
    record = {
        "stages": stages,
        "provided": provided,
        "inline": not_covered_reasons,
        "name": getattr(target, "name", None),
        "dtype": getattr(target, "dtype", None),
        "self_groups": {g: {r: dict(c) for r, c in rows.items()} for g, rows in table.items() if g != "target"},
    }
    with open(path, "w") as f:
        json.dump(record, f, indent=1, default=str)
