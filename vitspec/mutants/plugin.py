"""pytest plugin of `vitspec mutants` (loaded with ``-p vitspec.mutants.plugin``): select and order a mutant's tests,
stop Hypothesis from shrinking (a killed mutant only needs the first failure), and record what failed.

Only tests that check the target run: those marked with a protocol stage that use the `stage` or `target`
fixture (a mutant's bug is planted only while the target's stage methods run, so no other test can see it),
without the conformance or negative_control marks. --mutant-stages keeps the tests of those stages, in the
order the stages are given, each stage's own test file first.
"""
from __future__ import annotations

import json

import pytest

from vitspec.spec.protocol import STAGE_NAMES, STAGES

OWN_FILE = {s.name: f"test_{s.module}.py" for s in STAGES}  # where a stage's own checks live

STATE: dict = {"failures": [], "passed": 0, "skipped": 0}  # this run's results (one pytest session per process)


def pytest_addoption(parser):
    """--mutant-stages and --mutant-report."""
    group = parser.getgroup("vitspec mutants")
    group.addoption("--mutant-stages", default=None,
                    help="comma-separated protocol stages: run only the target tests marked with one of them")
    group.addoption("--mutant-report", default=None, help="write this run's failed tests and counts as JSON here")


def stages_of(item) -> list[str]:
    """The protocol stages a test is marked with."""
    return [s for mark in item.iter_markers("stage") for s in mark.args if s in STAGE_NAMES]


def checks_target(item) -> bool:
    """A test of the target: stage-marked, calling the target, neither a conformance test nor a negative control."""
    return (bool(stages_of(item)) and bool({"stage", "target"} & set(getattr(item, "fixturenames", ())))
            and not (item.get_closest_marker("conformance") or item.get_closest_marker("negative_control")))


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Keep the active Hypothesis profile but skip shrinking and explaining: the first failure kills the mutant."""
    from hypothesis import Phase, settings
    settings.register_profile("vitspec-mutant-gate", settings(settings.default,
                                                             phases=(Phase.explicit, Phase.reuse, Phase.generate)))
    settings.load_profile("vitspec-mutant-gate")
    STATE.update(failures=[], passed=0, skipped=0)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):  # noqa: ARG001
    """Drop tests that cannot see a planted bug (or not of the wanted stages); the first wanted stage runs first."""
    wanted = [s for s in (config.getoption("mutant_stages") or "").split(",") if s]
    unknown = [s for s in wanted if s not in STAGE_NAMES]
    if unknown:
        raise pytest.UsageError(f"--mutant-stages must name protocol stages, got {unknown}")
    keep, drop = [], []
    for item in items:
        ok = checks_target(item) and (not wanted or bool(set(stages_of(item)) & set(wanted)))
        (keep if ok else drop).append(item)
    if wanted:
        keep.sort(key=lambda it: order_key(it, wanted))
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def order_key(item, wanted: list[str]) -> tuple[int, int]:
    """The first wanted stage first; within a stage its own test file, then the regressions, then the rest."""
    name = item.path.name
    rank = min(wanted.index(s) for s in stages_of(item) if s in wanted)
    own = any(OWN_FILE[s] == name for s in stages_of(item) if s in wanted)
    return rank, 0 if own else 1 if name == "test_mutant_regressions.py" else 2


def pytest_runtest_logreport(report):
    """Count passes and skips; keep each failure's node id, phase and first message line."""
    state = STATE
    if report.failed:
        text = (report.longreprtext or "").strip().splitlines()
        message = next((ln.strip() for ln in text if ln.strip().startswith(("E ", "AssertionError"))), "")
        state["failures"].append({"nodeid": report.nodeid, "when": report.when, "message": message[:300]})
    elif report.when == "call" and report.passed:
        state["passed"] += 1
    elif report.skipped:
        state["skipped"] += 1


def pytest_sessionfinish(session, exitstatus):
    """Write the report: exit status, counts and failures (with their stages)."""
    path = session.config.getoption("mutant_report")
    state = STATE
    if not path:
        return
    stages = {it.nodeid: stages_of(it) for it in session.items}
    for failure in state["failures"]:
        failure["stages"] = stages.get(failure["nodeid"], [])
    with open(path, "w") as f:
        json.dump({"exitstatus": int(exitstatus), "collected": len(session.items), **state}, f)
