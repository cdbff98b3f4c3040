"""Running `vitspec mutants`: one pytest process per control or mutant, forked from a warm parent (or spawned
where fork is unsafe), at most -j at a time, each classified from the report vitspec/mutants/plugin.py writes."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import vitspec.tests as _suite
from vitspec.mutants.report import MODULE_OF
from vitspec.spec.protocol import STAGES

ROOT = Path(_suite.__file__).resolve().parent.parent  # the folder that holds the suite, tests/ (checkout or install)


@dataclass
class Job:
    name: str
    target: str
    stages: tuple[str, ...]
    dtype: str | None = None
    control: bool = False
    status: str = "pending"  # killed / survived / passed / failed / error
    killing_tests: list = field(default_factory=list)
    failed_stages: list = field(default_factory=list)
    detail: str = ""
    seconds: float = 0.0
    deselect: list = field(default_factory=list)  # tests that fail on impl unmutated (from the control)
    nodeids: list = field(default_factory=list)  # a control runs exactly these tests
    mutant: str = ""  # the catalogue name (name may carry the dtype)


def native_threads() -> int:
    """This process's OS threads (Linux), or -1 where unknown."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    except (OSError, StopIteration, ValueError):
        return -1


@functools.cache
def warm_start(profile: str) -> bool:
    """Collect the suite once in this process (imports torch, vitspec.tests.plugin and every test module, assertions
    rewritten) so that each run forked from here starts warm. False (runs are spawned) where fork is
    missing or collecting started threads that a fork could leave holding a lock."""
    if not hasattr(os, "fork"):
        return False
    import contextlib

    import numpy  # noqa: F401  (its BLAS threads start at import and are fork-safe)
    import pytest
    import scipy.special  # noqa: F401
    import torch  # noqa: F401
    before = native_threads()
    for key in [k for k in os.environ if k.startswith("PYTEST_") or k == "VITSPEC_TARGET"]:
        del os.environ[key]  # the runs take their options from the command line only
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        # Hypothesis fixes a test's settings when its module is imported: collect under the runs' own profile
        pytest.main([str(ROOT / "tests"), "--rootdir", str(ROOT), "--collect-only", "-qq", "-p", "no:cacheprovider",
                     "-o", "addopts=", "-p", "vitspec.mutants.plugin", "--target", "vitspec.impl:TARGET", "--profile", profile])
    import vitspec.mutants.catalogue  # noqa: F401
    return before > 0 and native_threads() == before


def pytest_args(job: Job, args, report: str) -> list[str]:
    """The pytest arguments of one run: the job's target, profile and stages, stopping after --maxfail failures."""
    argv = (job.nodeids or ["tests"]) + ["-p", "vitspec.mutants.plugin", "-q", "--no-header", "-p", "no:cacheprovider",
                                         "-o", "addopts=", "--target", job.target, "--profile", args.profile,
                                         "--mutant-report", report]
    if not job.control:  # a control runs all its tests: each one that fails on impl is a kill that does not count
        argv += ["--maxfail", str(args.maxfail)]
    if job.dtype:  # a mutant that fixes its own dtype keeps it (MutantTarget.with_options)
        argv += ["--dtype", job.dtype]
    stages = list(job.stages)
    if args.all_tests and stages:  # every target test, the bug's own stages first
        stages += [s.name for s in STAGES if s.name not in stages]
    argv += [a for nodeid in job.deselect for a in ("--deselect", nodeid)]
    return argv + (["--mutant-stages", ",".join(stages)] if stages else [])


def threads_per_run(jobs: int) -> int:
    """Torch threads of one run: the CPUs shared out between the parallel runs."""
    return max(1, (os.cpu_count() or 1) // jobs)


def forked_pytest(argv: list[str], log: str, threads: int) -> int:
    """Fork; the child runs pytest.main(argv) with its output in `log` and exits with pytest's code."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 3
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        for key in [k for k in os.environ if k.startswith("PYTEST_") or k == "VITSPEC_TARGET"]:
            del os.environ[key]
        import pytest
        import torch
        torch.set_num_threads(threads)
        os.chdir(ROOT)
        code = int(pytest.main(argv))
    except BaseException:  # noqa: B036 - whatever happens, the child must exit here
        import traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def spawned_pytest(argv: list[str], log: str, threads: int) -> subprocess.Popen:
    """A fresh interpreter running pytest (where fork is unavailable)."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("PYTEST_") or k == "VITSPEC_TARGET")}
    env.update(PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "pytest", *argv], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def classify(job: Job, rc: int, report: str, log: str) -> None:
    """Control passed/failed, mutant killed/survived, or error (pytest could not run, or no report)."""
    def tail():
        """The last lines pytest printed."""
        with open(log, errors="replace") as f:
            return f"pytest exit {rc}: " + " | ".join(f.read().strip().splitlines()[-4:])
    try:
        with open(report) as f:
            result = json.load(f)
    except (OSError, ValueError):
        job.status, job.detail = "error", tail()
        return
    failures = result["failures"]
    job.killing_tests = [f["nodeid"] for f in failures]
    job.failed_stages = sorted({s for f in failures for s in f["stages"]}, key=list(MODULE_OF).index)
    if rc not in (0, 1, 5) or (rc == 1 and not failures):
        job.status, job.detail = "error", tail()
    elif job.control:
        job.status = "failed" if failures else "passed"
        job.detail = failures[0]["message"] if failures else f"the {result['passed']} tests that killed mutants pass"
    else:
        job.status = "killed" if failures else "survived"
        job.detail = failures[0]["message"] if failures else (
            f"{result['passed']} tests passed" if result["collected"] else "no test checks these stages")


def run_all(jobs: list[Job], args) -> None:
    """Run the jobs, args.jobs at a time, each in its own process; progress on stderr."""
    fork = warm_start(args.profile)
    threads = threads_per_run(args.jobs)
    pending, running, done = list(jobs), {}, 0
    with tempfile.TemporaryDirectory(prefix="vitspec-mutants-") as workdir:
        while pending or running:
            while pending and len(running) < args.jobs:
                job = pending.pop(0)
                base = os.path.join(workdir, f"{len(pending)}")
                argv = pytest_args(job, args, base + ".json")
                proc = forked_pytest(argv, base + ".log", threads) if fork else spawned_pytest(argv, base + ".log",
                                                                                               threads)
                running[proc if fork else proc.pid] = (job, proc, base, time.monotonic())
            time.sleep(0.05)
            for key, (job, proc, base, start) in list(running.items()):
                rc = poll(proc, fork)
                job.seconds = time.monotonic() - start
                if rc is None and job.seconds > args.timeout:
                    os.kill(key, 9)
                    rc = poll(proc, fork, wait=True)
                    job.status, job.detail = "error", f"timed out after {args.timeout:.0f} s"
                if rc is None:
                    continue
                del running[key]
                if job.status == "pending":
                    classify(job, rc, base + ".json", base + ".log")
                done += 1
                first = job.killing_tests[0] if job.killing_tests else job.detail
                print(f"[{done}/{len(jobs)}] {job.status:8} {job.name} ({job.seconds:.1f} s) {first}",
                      file=sys.stderr, flush=True)


def poll(proc, fork: bool, wait: bool = False):
    """The exit code of a finished run, else None."""
    if not fork:
        return proc.wait() if wait else proc.poll()
    pid, status = os.waitpid(proc, 0 if wait else os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if pid else None


def verify_kills(mutants: list[Job], args, rounds: int = 3) -> list[Job]:
    """impl unmutated runs every test that killed a mutant, in the mutant's dtype: a kill counts only if that test
    passes there. A mutant killed by a test failing on impl runs again without the failing tests (then its new
    killing test is checked too), at most `rounds` times; still unchecked kills end "unverified". Returns the
    control runs."""
    controls, passed, broken = [], {}, {}
    for round_ in range(rounds + 1):
        unchecked = {}
        for j in (j for j in mutants if j.status == "killed"):
            d = j.dtype or "float32"
            unchecked.setdefault(d, set()).update(set(j.killing_tests) - passed.get(d, set()) - broken.get(d, set()))
        unchecked = {d: sorted(ids) for d, ids in unchecked.items() if ids}
        if unchecked and round_ < rounds:
            batch = [Job(f"control ({d})" + (f" #{round_ + 1}" if round_ else ""), "vitspec.impl:TARGET", (), d,
                         control=True, nodeids=ids) for d, ids in unchecked.items()]
            run_all(batch, args)
            for c in batch:
                broken.setdefault(c.dtype, set()).update(c.killing_tests)
                passed.setdefault(c.dtype, set()).update(set(c.nodeids) - set(c.killing_tests))
            controls += batch
        false_kills = [j for j in mutants if j.status == "killed"
                       and (set(j.killing_tests) & broken.get(j.dtype or "float32", set())
                            or not set(j.killing_tests) <= passed.get(j.dtype or "float32", set()))]
        if not false_kills:
            break
        if round_ == rounds:
            for j in false_kills:
                j.status, j.detail = "unverified", "killed only by tests not shown to pass on impl unmutated"
            break
        for j in false_kills:
            if set(j.killing_tests) & broken.get(j.dtype or "float32", set()):
                j.status, j.killing_tests = "pending", []
                j.deselect = sorted(broken[j.dtype or "float32"])
        again = [j for j in false_kills if j.status == "pending"]
        if again:
            print(f"rerunning {len(again)} mutants without the tests that fail on impl unmutated", file=sys.stderr)
            run_all(again, args)
    return controls
