"""False alarms: run the suite's nightly profile again and again with fresh random seeds and count what fails.

    VITSPEC_CAMPAIGN=20 python -m pytest tests/test_campaign.py -k nightly_campaign -s

runs the property suite 20 times against the configured target (--target, default impl:TARGET), each run with its
own fresh Hypothesis example database (so a failure is saved there and replays with VITSPEC_HYPOTHESIS_DB=<dir>),
and reports runs, generated examples, and every failure as consistent (every run) or intermittent (a flake).
The mutant gate is left out (VITSPEC_SKIP_MUTANTS=1). Options by environment: VITSPEC_CAMPAIGN_WORKERS
(pytest-xdist workers per run, default 2), VITSPEC_CAMPAIGN_ARGS (extra pytest arguments, e.g. "-k 'not cli'"),
VITSPEC_CAMPAIGN_DIR (where runs are kept).
The default run checks the runner itself and the shared example database (docs/FUZZING.md) on planted tests.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.checks import RUN

ROOT = Path(__file__).resolve().parents[1]
SUITE_EXCLUDE = {"test_campaign.py"}


def suite_files() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py") if p.name not in SUITE_EXCLUDE)


def examples_from_statistics(text: str) -> dict[str, int]:
    """Test cases per Hypothesis phase, summed over tests, from --hypothesis-show-statistics output."""
    counts, phase = {}, None
    for line in text.splitlines():
        m = re.search(r"- during (\w+) phase", line)
        if m:
            phase = m.group(1)
        # "400 passing, 0 failing, and 0 invalid test cases" (newer) or
        # "400 passing examples, 0 failing examples, 0 invalid examples" (older Hypothesis 6 releases)
        m = re.search(r"(\d+) passing(?: examples)?, (\d+) failing(?: examples)?, (?:and )?(\d+) invalid", line)
        if m and phase:
            counts[phase] = counts.get(phase, 0) + int(m.group(1)) + int(m.group(2))
    return counts


def failures_from_junit(path: Path) -> tuple[int, list[tuple[str, str]]]:
    """(tests run, [(test id, first line of the failure)]) from a JUnit XML report."""
    root = ET.parse(path).getroot()
    tests, failed = 0, []
    for case in root.iter("testcase"):
        tests += 1
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            first = (bad.get("message") or bad.text or "").strip().splitlines()
            failed.append((f"{case.get('classname')}::{case.get('name')}", first[0][:300] if first else ""))
    return tests, failed


def run_once(k: int, workdir: Path, paths, args=(), workers: int = 2, env=None) -> dict:
    """One nightly run in a fresh process with its own example database; its figures and failures."""
    db, xml = workdir / f"db-{k}", workdir / f"run-{k}.xml"
    argv = [sys.executable, "-m", "pytest", *paths, "--profile", "nightly", "-q", "-p", "no:cacheprovider",
            "--hypothesis-show-statistics", f"--junitxml={xml}", *(["-n", str(workers)] if workers > 1 else []), *args]
    env = dict(os.environ, VITSPEC_SKIP_MUTANTS="1", **(env or {}), VITSPEC_HYPOTHESIS_DB=str(db),
               VITSPEC_CAMPAIGN_RUN=str(k), PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("VITSPEC_CAMPAIGN", None)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if not xml.exists():
        raise RuntimeError(f"run {k} produced no report (exit {done.returncode}): {done.stderr[-2000:]}")
    tests, failed = failures_from_junit(xml)
    (workdir / f"run-{k}.log").write_text(done.stdout + done.stderr)
    return {"run": k, "exit": done.returncode, "tests": tests, "failed": failed, "seconds": seconds,
            "examples": examples_from_statistics(done.stdout), "database": str(db)}


def campaign(runs: int, workdir: Path, paths, args=(), workers: int = 2, env=None, log=print) -> dict:
    """`runs` nightly runs; failures grouped by test as consistent (every run) or intermittent."""
    results = []
    for k in range(runs):
        results.append(run_once(k, workdir, paths, args, workers, env))
        r = results[-1]
        log(f"run {k}: {r['tests']} tests, {r['examples'].get('generate', 0)} generated examples, "
            f"{len(r['failed'])} failed, {r['seconds']:.0f} s")
    by_test: dict[str, list] = {}
    for r in results:
        for test, message in r["failed"]:
            by_test.setdefault(test, []).append((r["run"], message, r["database"]))
    return {"runs": runs, "tests": sum(r["tests"] for r in results),
            "examples": sum(r["examples"].get("generate", 0) for r in results),
            "seconds": sum(r["seconds"] for r in results), "failures": by_test,
            "consistent": sorted(t for t, hits in by_test.items() if len(hits) == runs),
            "intermittent": sorted(t for t, hits in by_test.items() if len(hits) < runs)}


def summary(result: dict) -> str:
    lines = [f"{result['runs']} runs, {result['tests']} test runs, {result['examples']} generated examples, "
             f"{result['seconds']:.0f} s; {len(result['consistent'])} consistent and "
             f"{len(result['intermittent'])} intermittent failures"]
    for test, hits in sorted(result["failures"].items()):
        lines.append(f"  {test}: failed in runs {[h[0] for h in hits]} -- {hits[0][1][:200]} (database {hits[0][2]})")
    return "\n".join(lines)


@pytest.mark.skipif(not os.environ.get("VITSPEC_CAMPAIGN"),
                    reason="a false-alarm campaign takes minutes to hours: set VITSPEC_CAMPAIGN=<runs> to run it")
def test_nightly_campaign():
    runs = int(os.environ["VITSPEC_CAMPAIGN"])
    workdir = Path(os.environ.get("VITSPEC_CAMPAIGN_DIR") or tempfile.mkdtemp(prefix="vitspec-campaign-"))
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["--target", RUN["target"], *shlex.split(os.environ.get("VITSPEC_CAMPAIGN_ARGS", ""))]
    for opt in ("device", "dtype"):
        if RUN.get(opt):
            args += [f"--{opt}", RUN[opt]]
    result = campaign(runs, workdir, [str(ROOT / p) for p in suite_files()], args,
                      int(os.environ.get("VITSPEC_CAMPAIGN_WORKERS", "2")))
    print(f"\ncampaign in {workdir}: {summary(result)}")
    assert not result["failures"], summary(result)


# --- the runner and the shared database, on planted tests ------------------------------------------------------

PLANTED = '''
import os
from hypothesis import given, strategies as st

def log(x):
    with open(os.environ["PLANT_LOG"], "a") as f:
        f.write(f"{os.environ.get('VITSPEC_CAMPAIGN_RUN')} {x}\\n")

@given(st.integers(0, 10**6))
def test_always(x):
    log(x)
    assert x < 150000

@given(st.integers(0, 10))
def test_sometimes(x):
    assert os.environ.get("VITSPEC_CAMPAIGN_RUN") != "1" or x < 5

@given(st.integers())
def test_never(x):
    pass
'''


PLANTED_ARGS = ["-p", "conftest", "--target", "reference:TARGET"]  # the suite's options; no torch to import


def planted(tmp_path: Path) -> tuple[Path, dict]:
    test = tmp_path / "test_planted.py"
    test.write_text(PLANTED)
    return test, {"PLANT_LOG": str(tmp_path / "examples.log")}


def test_runner_reports_consistent_and_intermittent_failures(tmp_path):
    test, env = planted(tmp_path)
    result = campaign(2, tmp_path, [str(test)], PLANTED_ARGS, workers=1, env=env, log=lambda _: None)
    assert result["runs"] == 2 and result["tests"] == 6, summary(result)
    assert result["consistent"] == ["test_planted::test_always"], summary(result)
    assert result["intermittent"] == ["test_planted::test_sometimes"], summary(result)
    assert [h[0] for h in result["failures"]["test_planted::test_sometimes"]] == [1]
    assert "150000" in result["failures"]["test_planted::test_always"][0][1], summary(result)
    assert result["examples"] >= 2 * 400, summary(result)  # test_never: the nightly profile's 400 per run


def first_examples(log: Path, run: str) -> list[str]:
    return [line.split()[1] for line in log.read_text().splitlines() if line.split()[0] == run]


def test_profiles_choose_the_database():
    """nightly keeps examples in $VITSPEC_HYPOTHESIS_DB (default .hypothesis); ci and mutation keep none."""
    nightly = settings.get_profile("nightly").database
    assert isinstance(nightly, DirectoryBasedExampleDatabase), nightly
    assert Path(nightly.path) == Path(os.environ.get("VITSPEC_HYPOTHESIS_DB", ".hypothesis")), nightly.path
    assert settings.get_profile("ci").database is None and settings.get_profile("mutation").database is None


def test_shared_database_replays_a_failure_first(tmp_path):
    """Two pytest processes (-n 2 each) with one VITSPEC_HYPOTHESIS_DB directory: what the first finds and saves,
    the second tries first."""
    test, env = planted(tmp_path)
    shared = tmp_path / "shared-db"
    argv = [sys.executable, "-m", "pytest", *PLANTED_ARGS, str(test), "-q", "-p", "no:cacheprovider", "-k", "always"]
    base = dict(os.environ, **env, VITSPEC_HYPOTHESIS_DB=str(shared),
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    for run in ("A", "B"):
        done = subprocess.run(argv + ["--profile", "nightly", "-n", "2"], cwd=tmp_path,
                              env=dict(base, VITSPEC_CAMPAIGN_RUN=run), capture_output=True, text=True)
        assert done.returncode == 1 and "x=150000" in done.stdout, done.stdout[-2000:]
    assert any(shared.rglob("*")), "the nightly run saved nothing in VITSPEC_HYPOTHESIS_DB"
    found, replayed = first_examples(tmp_path / "examples.log", "A"), first_examples(tmp_path / "examples.log", "B")
    assert found[0] != "150000" and replayed[0] == "150000", (found[:3], replayed[:3])


def test_statistics_parser_reads_both_hypothesis_formats():
    newer = "  - during generate phase (0.1 seconds):\n    - 28 passing, 4 failing, and 0 invalid test cases\n"
    older = "  - during shrink phase (0.1 seconds):\n    - 19 passing examples, 23 failing examples, 2 invalid examples\n"
    assert examples_from_statistics(newer + older) == {"generate": 32, "shrink": 42}
    assert examples_from_statistics("    - 5 passing, 0 failing, and 0 invalid test cases\n") == {}  # no phase line
