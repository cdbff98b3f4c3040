"""False alarms: run the suite's nightly profile again and again with fresh random seeds and count what fails.

    VITSPEC_CAMPAIGN=20 python -m pytest tests/test_campaign.py -k nightly_campaign -s

runs the property suite 20 times against the configured target (--target, default vitspec.impl:TARGET), each run with its
own fresh Hypothesis example database (so a failure is saved there and replays with VITSPEC_HYPOTHESIS_DB=<dir>),
and reports runs, generated examples, and every failure as consistent (every run) or intermittent (a flake).
The mutant gate is left out (VITSPEC_SKIP_MUTANTS=1). Options by environment: VITSPEC_CAMPAIGN_WORKERS
(pytest-xdist workers per run, default 2), VITSPEC_CAMPAIGN_ARGS (extra pytest arguments, e.g. "-k 'not cli'"),
VITSPEC_CAMPAIGN_DIR (where runs are kept).
The default run checks the runner itself and the shared example database (docs/FUZZING.md) on planted tests.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

from vitspec.tests import subproc
from vitspec.tests.checks import RUN
from vitspec.tests.shared_db import configuration_name

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
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *paths,
        "--profile",
        "nightly",
        "-q",
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
        f"--junitxml={xml}",
        *(["-n", str(workers)] if workers > 1 else []),
        *args,
    ]
    env = subproc.env(
        **{
            "VITSPEC_SKIP_MUTANTS": "1",
            **(env or {}),
            "VITSPEC_HYPOTHESIS_DB": db,
            "VITSPEC_CAMPAIGN_RUN": k,
            "VITSPEC_CAMPAIGN": None,
        }
    )
    start = time.perf_counter()
    done = subproc.run(argv, cwd_=workdir, env_=env)
    seconds = time.perf_counter() - start
    if not xml.exists():
        raise RuntimeError(f"run {k} produced no report (exit {done.returncode}): {done.stderr[-2000:]}")
    tests, failed = failures_from_junit(xml)
    (workdir / f"run-{k}.log").write_text(done.stdout + done.stderr)
    return {
        "run": k,
        "exit": done.returncode,
        "tests": tests,
        "failed": failed,
        "seconds": seconds,
        "examples": examples_from_statistics(done.stdout),
        "database": str(db),
    }


def campaign(runs: int, workdir: Path, paths, args=(), workers: int = 2, env=None, log=print) -> dict:
    """`runs` nightly runs; failures grouped by test as consistent (every run) or intermittent."""
    results = []
    for k in range(runs):
        results.append(run_once(k, workdir, paths, args, workers, env))
        r = results[-1]
        log(
            f"run {k}: {r['tests']} tests, {r['examples'].get('generate', 0)} generated examples, "
            f"{len(r['failed'])} failed, {r['seconds']:.0f} s"
        )
    by_test: dict[str, list] = {}
    for r in results:
        for test, message in r["failed"]:
            by_test.setdefault(test, []).append((r["run"], message, r["database"]))
    return {
        "runs": runs,
        "tests": sum(r["tests"] for r in results),
        "examples": sum(r["examples"].get("generate", 0) for r in results),
        "seconds": sum(r["seconds"] for r in results),
        "failures": by_test,
        "consistent": sorted(t for t, hits in by_test.items() if len(hits) == runs),
        "intermittent": sorted(t for t, hits in by_test.items() if len(hits) < runs),
    }


def summary(result: dict) -> str:
    lines = [
        f"{result['runs']} runs, {result['tests']} test runs, {result['examples']} generated examples, "
        f"{result['seconds']:.0f} s; {len(result['consistent'])} consistent and "
        f"{len(result['intermittent'])} intermittent failures"
    ]
    for test, hits in sorted(result["failures"].items()):
        lines.append(f"  {test}: failed in runs {[h[0] for h in hits]} -- {hits[0][1][:200]} (database {hits[0][2]})")
    return "\n".join(lines)


@pytest.mark.skipif(
    not os.environ.get("VITSPEC_CAMPAIGN"),
    reason="a false-alarm campaign takes minutes to hours: set VITSPEC_CAMPAIGN=<runs> to run it",
)
def test_nightly_campaign():
    runs = int(os.environ["VITSPEC_CAMPAIGN"])
    workdir = Path(os.environ.get("VITSPEC_CAMPAIGN_DIR") or tempfile.mkdtemp(prefix="vitspec-campaign-"))
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["--target", RUN["target"], *shlex.split(os.environ.get("VITSPEC_CAMPAIGN_ARGS", ""))]
    for opt in ("device", "dtype"):
        if RUN.get(opt):
            args += [f"--{opt}", RUN[opt]]
    result = campaign(
        runs,
        workdir,
        [str(ROOT / p) for p in suite_files()],
        args,
        int(os.environ.get("VITSPEC_CAMPAIGN_WORKERS", "2")),
    )
    print(f"\ncampaign in {workdir}: {summary(result)}")
    assert not result["failures"], summary(result)


# --- the runner and the shared database, on planted tests ------------------------------------------------------

PLANTED = Path(__file__).resolve().parent / "children" / "planted_campaign.py"  # the child's test file
PLANTED_ARGS = ["--target", "vitspec.reference:TARGET"]  # the suite's options; no torch to import


def planted(tmp_path: Path) -> tuple[Path, dict]:
    test = Path(shutil.copy(PLANTED, tmp_path / "test_planted.py"))
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


def run_planted_twice(tmp_path: Path, env_of) -> tuple[list[str], list[str]]:
    """Runs A then B (pytest -n 2 each, nightly profile) of the planted always-failing test, with env_of(run) added
    to the environment; the examples each run tried, in order."""
    test, env = planted(tmp_path)
    argv = [sys.executable, "-m", "pytest", *PLANTED_ARGS, str(test), "-q", "-p", "no:cacheprovider", "-k", "always"]
    base = subproc.env(**env, VITSPEC_SHARED_DB=None)
    for run in ("A", "B"):
        done = subproc.run(
            argv + ["--profile", "nightly", "-n", "2"],
            cwd_=tmp_path,
            env_=dict(base, VITSPEC_CAMPAIGN_RUN=run, **env_of(run)),
        )
        assert done.returncode == 1 and "x=150000" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    log = tmp_path / "examples.log"
    return first_examples(log, "A"), first_examples(log, "B")


def test_shared_database_replays_a_failure_first(tmp_path):
    """Two pytest processes (-n 2 each) with one VITSPEC_HYPOTHESIS_DB directory: what the first finds and saves,
    the second tries first."""
    shared = tmp_path / "shared-db"
    found, replayed = run_planted_twice(tmp_path, lambda run: {"VITSPEC_HYPOTHESIS_DB": str(shared)})
    assert any(shared.rglob("*")), "the nightly run saved nothing in VITSPEC_HYPOTHESIS_DB"
    assert found[0] != "150000" and replayed[0] == "150000", (found[:3], replayed[:3])


def test_separate_databases_do_not_replay(tmp_path):
    """Negative control of the replay checks: with nothing shared, the second process starts afresh."""
    found, replayed = run_planted_twice(tmp_path, lambda run: {"VITSPEC_HYPOTHESIS_DB": str(tmp_path / f"db-{run}")})
    assert found[0] != "150000" and replayed[0] != "150000", (found[:3], replayed[:3])


def test_shared_directory_beside_local_databases(tmp_path):
    """Each machine keeps its own local database; VITSPEC_SHARED_DB (a directory) carries the failure across."""
    shared = tmp_path / "shared"
    found, replayed = run_planted_twice(
        tmp_path,
        lambda run: {"VITSPEC_HYPOTHESIS_DB": str(tmp_path / f"local-{run}"), "VITSPEC_SHARED_DB": str(shared)},
    )
    assert [p.name for p in shared.iterdir()] == [configuration_name("vitspec.reference:TARGET", None, None)]
    assert found[0] != "150000" and replayed[0] == "150000", (found[:3], replayed[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def redis_server(kind: str):
    """A Redis server on a free loopback port: Debian's redis-server, or fakeredis's TCP server in a thread."""
    port = free_port()
    if kind == "redis-server":
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("UPSTREAM ORACLE MISSING: redis-server is not installed (apt install redis-server)")
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)
        return
    try:
        from fakeredis import TcpFakeServer
    except ImportError as e:
        pytest.skip(f"UPSTREAM ORACLE MISSING: fakeredis ({e})")
    server = TcpFakeServer(("127.0.0.1", port))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["fakeredis", "redis-server"])
def test_redis_database_replays_across_processes(tmp_path, kind):
    """Hypothesis's RedisExampleDatabase through VITSPEC_SHARED_DB=redis://...: separate local databases, one Redis
    server; the second process replays the first one's failure first, from keys under vitspec:<configuration>:."""
    pytest.importorskip("redis", reason="UPSTREAM ORACLE MISSING: the redis package (pip install redis)")
    from redis import Redis

    with redis_server(kind) as url:
        found, replayed = run_planted_twice(
            tmp_path, lambda run: {"VITSPEC_HYPOTHESIS_DB": str(tmp_path / f"local-{run}"), "VITSPEC_SHARED_DB": url}
        )
        keys = Redis.from_url(url).keys("*")
    prefix = f"vitspec:{configuration_name('vitspec.reference:TARGET', None, None)}:".encode()
    assert keys and all(k.startswith(prefix) for k in keys), keys
    assert found[0] != "150000" and replayed[0] == "150000", (found[:3], replayed[:3])


@pytest.mark.parametrize("location, rule", [("ftp://host/db", "must be a directory or a URL"), ("  ", "must be a")])
def test_bad_shared_database_is_a_usage_error(tmp_path, location, rule):
    test, env = planted(tmp_path)
    done = subproc.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *PLANTED_ARGS,
            str(test),
            "-q",
            "-p",
            "no:cacheprovider",
            "--profile",
            "nightly",
        ],
        cwd_=tmp_path,
        env_=subproc.env(**env, VITSPEC_SHARED_DB=location),
    )
    assert done.returncode == 4 and "VITSPEC_SHARED_DB" in done.stderr and rule in done.stderr, done.stderr[-1500:]


def test_statistics_parser_reads_both_hypothesis_formats():
    newer = "  - during generate phase (0.1 seconds):\n    - 28 passing, 4 failing, and 0 invalid test cases\n"
    older = (
        "  - during shrink phase (0.1 seconds):\n    - 19 passing examples, 23 failing examples, 2 invalid examples\n"
    )
    assert examples_from_statistics(newer + older) == {"generate": 32, "shrink": 42}
    assert examples_from_statistics("    - 5 passing, 0 failing, and 0 invalid test cases\n") == {}  # no phase line
