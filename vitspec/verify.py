"""`vitspec verify`: run the property suite on a target and print a report per stage.

    vitspec verify --target mypkg.adapter:TARGET --dtype bfloat16 --device cuda --profile ci

The suite (the tests directory beside this package) runs in this process. A line per finished test file goes
to stderr; failures and the table go to stdout. Exit codes: 0 no check failed; 1 a check failed, nothing ran,
or the run broke; 2 bad arguments (one line on stderr).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

import vitspec.tests as _suite

from vitspec.spec.protocol import DTYPES, STAGE_NAMES, configured_target, default_target
from vitspec.tests.plugin import PROFILES

ROOT = Path(_suite.__file__).resolve().parent.parent  # the folder that holds the suite, tests/ (checkout or install)
TESTS = ROOT / "tests"
NOT_COVERED = "NOT COVERED:"
GROUPS = ("target", "reference conformance", "negative controls", "other checks (no stage marker)",
          "impl and reference modules (whatever the target)")


class UsageError(Exception):
    """A bad argument: one line on stderr, exit code 2."""


def test_groups(stages: list[str], conformance, negative: bool, modules: bool = False) -> list[tuple[str, str]]:
    """The (group, row) pairs a test counts in: target tests once per protocol stage they are marked with.

    conformance is the test's conformance marker (None when it has none); its oracle= names the row's oracle.
    modules: the test calls impl's or the reference's modules directly, so it checks no target."""
    if not stages:
        return [(GROUPS[3], "(no stage)")]
    if negative:
        return [("negative controls", stages[0])]
    if conformance is not None or any(s not in STAGE_NAMES for s in stages):
        oracle = conformance.kwargs.get("oracle") if conformance is not None else None
        return [("reference conformance", stages[0] + (f" vs {oracle}" if oracle else ""))]
    if modules:
        return [(GROUPS[4], stages[0])]
    return [("target", s) for s in stages]


class Collector:
    """A pytest plugin that records each test's outcome with its stage rows and prints progress per file."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.rows: dict[str, list[tuple[str, str]]] = {}
        self.outcome: dict[str, tuple[str, str]] = {}
        self.failures: list[tuple[str, str]] = []
        self.per_file: Counter = Counter()
        self.done: dict[str, Counter] = defaultdict(Counter)

    def pytest_collection_finish(self, session):
        for item in session.items:
            stages = [name for m in item.iter_markers("stage") for name in m.args]
            self.rows[item.nodeid] = test_groups(stages, item.get_closest_marker("conformance"),
                                                 item.get_closest_marker("negative_control") is not None,
                                                 item.get_closest_marker("modules") is not None)
            self.per_file[item.nodeid.split("::")[0]] += 1
        print(f"vitspec verify: {len(session.items)} checks in {len(self.per_file)} files", file=self.stream, flush=True)

    def pytest_collectreport(self, report):
        if report.failed:
            self.outcome[report.nodeid] = ("failed", "collection error")
            self.rows[report.nodeid] = [("target", "(collection)")]
            self.failures.append((report.nodeid, str(report.longrepr)))

    def pytest_runtest_logreport(self, report):
        node = report.nodeid
        if report.failed:
            if self.outcome.get(node, ("",))[0] != "failed":
                self.failures.append((node, report.longreprtext))
            self.outcome[node] = ("failed", report.when)
        elif report.skipped and node not in self.outcome:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            self.outcome[node] = ("not covered" if reason.startswith(NOT_COVERED) else "skipped", reason)
        elif report.when == "call" and report.passed and node not in self.outcome:
            self.outcome[node] = ("passed", "")
        if report.when == "teardown":
            self._progress(node)

    def _progress(self, node: str):
        path = node.split("::")[0]
        self.done[path][self.outcome.get(node, ("passed",))[0]] += 1
        counts = self.done[path]
        if sum(counts.values()) == self.per_file[path]:
            parts = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "not covered", "skipped") if counts[k])
            print(f"  {path:40} {parts}", file=self.stream, flush=True)

    def table(self) -> dict:
        """{group: {row: Counter(checks, passed, failed, not covered, skipped)}}."""
        out: dict = {g: defaultdict(Counter) for g in GROUPS}
        for node, rows in self.rows.items():
            kind = self.outcome.get(node, ("skipped", "did not run"))[0]
            for group, row in rows:
                out[group][row]["checks"] += 1
                out[group][row][kind] += 1
        return out


def format_table(table: dict, title: str) -> str:
    cols = ("checks", "passed", "failed", "not covered", "skipped")
    lines = [f"{'stage':40}" + "".join(f"{c:>12}" for c in cols)]
    order = {s: i for i, s in enumerate(STAGE_NAMES)}
    for group in GROUPS:
        rows = table[group]
        if not rows:
            continue
        lines.append(title if group == "target" else group)
        for row in sorted(rows, key=lambda r: (order.get(r.split(" vs ")[0], len(order)), r)):
            c = rows[row]
            mark = "  FAIL" if c["failed"] else ("  NOT COVERED" if c["not covered"] == c["checks"] else "")
            lines.append(f"  {row:38}" + "".join(f"{c[k]:>12}" for k in cols) + mark)
    return "\n".join(lines)


def failure_excerpt(text: str, limit: int = 30) -> str:
    """The error lines of a pytest failure (the check's message, Hypothesis's falsifying example)."""
    lines = [ln[4:] for ln in text.splitlines() if ln.startswith("E   ")]
    lines = lines or text.splitlines()[-limit:]
    return "\n".join(lines[:limit])


def build_parser() -> argparse.ArgumentParser:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError(message)

    p = Parser(prog="vitspec verify", description="Run the property suite on a target and print a per-stage "
               "report (stages the target lacks are NOT COVERED, never passed).",
               epilog="Exit codes: 0 no check failed, 1 a check failed or nothing ran, 2 bad arguments.")
    p.add_argument("--target", default=None, help="package.module:attr (default $VITSPEC_TARGET or vitspec.impl:TARGET)")
    p.add_argument("--profile", choices=PROFILES, default="ci", help="Hypothesis profile (default ci)")
    p.add_argument("--device", default=None, help="cpu or cuda, applied with the target's with_options")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="compute dtype, applied with with_options")
    p.add_argument("--max-examples", type=int, default=None, help="examples per property (overrides the profile)")
    p.add_argument("--junitxml", metavar="FILE", default=None, help="also write a JUnit XML report")
    p.add_argument("-k", dest="keyword", metavar="EXPR", default=None, help="only tests matching EXPR (pytest -k)")
    return p


def pytest_args(args) -> list[str]:
    argv = [str(TESTS), "--rootdir", str(ROOT), "-o", "addopts=", "-p", "no:terminal", "-p", "no:cacheprovider",
            "--target", args.target, "--profile", args.profile]
    for opt, value in (("--device", args.device), ("--dtype", args.dtype), ("--max-examples", args.max_examples),
                       ("--junitxml", args.junitxml), ("-k", args.keyword)):
        if value is not None:
            argv += [opt, str(value)]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        args.target = args.target or default_target()
        if args.max_examples is not None and args.max_examples < 1:
            raise UsageError(f"--max-examples must be a positive integer, got {args.max_examples}")
        if not TESTS.is_dir():
            raise UsageError(f"the test suite is not installed beside the package ({TESTS} is missing); "
                             f"install vitspec from a checkout with pip install -e")
        target = configured_target(args.target, args.device, args.dtype)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except (UsageError, ValueError, TypeError) as e:
        print(f"vitspec verify: error: {e}", file=sys.stderr)
        return 2
    import pytest
    collector = Collector()
    code = int(pytest.main(pytest_args(args), plugins=[collector]))
    if code == int(pytest.ExitCode.USAGE_ERROR):
        print("vitspec verify: error: pytest rejected the arguments (see above)", file=sys.stderr)
        return 2
    for node, text in collector.failures:
        print(f"\nFAILED {node}\n{failure_excerpt(text)}")
    title = (f"target {args.target} ({getattr(target, 'name', '?')}, {getattr(target, 'dtype', 'float64')}, "
             f"{getattr(target, 'device', 'cpu')})")
    table = collector.table()
    print("\n" + format_table(table, title))
    total = Counter()
    for rows in table.values():
        for c in rows.values():
            total.update(c)
    missing = sorted(r for r, c in table["target"].items() if c["not covered"])
    nodes = Counter(kind for kind, _ in collector.outcome.values())
    oracle_missing = sum(1 for kind, why in collector.outcome.values() if why.startswith("UPSTREAM ORACLE MISSING"))
    verdict = "PASS" if nodes["failed"] == 0 and code in (0, 1) and collector.outcome else "FAIL"
    if not collector.outcome:
        print("\nFAIL: no checks ran" + (f" (-k {args.keyword!r} selected none)" if args.keyword else ""))
        return 1
    print(f"\n{verdict}: {len(collector.outcome)} tests: {nodes['passed']} passed, {nodes['failed']} failed, "
          f"{nodes['not covered']} not covered" + (f" (stages {', '.join(missing)})" if missing else "")
          + f", {nodes['skipped']} skipped" + (f" ({oracle_missing} UPSTREAM ORACLE MISSING)" if oracle_missing else "")
          + f"; profile {args.profile}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
