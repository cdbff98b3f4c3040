"""`vitspec mutants`: run the property suite against every planted-bug mutant and gate on the kill rate.

    vitspec mutants [--profile mutation] [--json FILE|-] [--only NAME,...] [-j N] [--junitxml FILE]

Each mutant (spec/mutant_catalogue.py) is checked in its own pytest process, ``--target
spec.mutant_catalogue:<name>``, on the tests of the stages its bug changes (--all-tests: every target test,
those stages first), stopping at the first failure. impl unmutated runs first as the control, once per
dtype the mutants use, on the same tests: it must pass, or the gate means nothing. Exit 0 when the control
passes and every mutant is killed; 1 otherwise; 2 for bad arguments.

Mutation testing of the reference's integer and index code (mutmut 3.8, configured in setup.cfg [mutmut]),
from the repository root:

    rm -rf mutants && mutmut run --max-children 2 "reference.windows.*" "reference.tokens.*" \
        "reference.patchify.x_patch_row_origin*" "reference.patchify.x_patchify*" \
        "reference.patchify.x_unpatchify*" "reference.patchify.x_document_to_model_columns*" \
        "reference.rope.x_rotary_position_ids*" "reference.rope.x_inv_freq*" "reference.resize.x_smart_resize*"
    mutmut export-cicd-stats && cat mutants/mutmut-cicd-stats.json && mutmut results
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from spec.mutant_report import MODULE_OF, as_json, discount_control_failures, matrix, write_junit
from spec.protocol import STAGES

ROOT = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    """Bad command-line input (exit 2)."""


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


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """A bad option is one line on stderr and exit 2, as everywhere in the command line."""
        raise UsageError(message)


def parse_args(argv):
    """The options of `vitspec mutants` (UsageError for a bad one)."""
    p = _Parser(prog="vitspec mutants", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="mutation", choices=["dev", "ci", "nightly", "mutation"],
                   help="Hypothesis profile of every run (default mutation: few derandomized examples)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE ('-': stdout)")
    p.add_argument("--only", metavar="NAME,...", help="run only these mutants (comma-separated names)")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="parallel pytest processes "
                   "(default: CPU count)")
    p.add_argument("--junitxml", metavar="FILE", help="write one JUnit test case per mutant (killed = pass)")
    p.add_argument("--maxfail", type=int, default=1, help="failures after which a mutant's run stops (default 1)")
    p.add_argument("--all-tests", action="store_true", help="run every target test on each mutant, its stages first")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest process (default 600)")
    p.add_argument("--list", action="store_true", help="print the catalogue and exit")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.maxfail < 1 or args.timeout <= 0:
        raise UsageError("-j, --maxfail and --timeout must be positive")
    return args


def select(only):
    """The catalogue entries named by --only (all when None)."""
    from spec.mutant_catalogue import BY_NAME, CATALOGUE
    if not only:
        return list(CATALOGUE)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise UsageError(f"unknown mutants {unknown}; see vitspec mutants --list")
    return [BY_NAME[n] for n in names]


def plan(mutants, all_tests: bool) -> list[Job]:
    """One control job per dtype (impl unmutated on the union of those mutants' stages), then the mutants."""
    jobs = []
    for dtype in dict.fromkeys(m.dtype or "float32" for m in mutants):
        stages = () if all_tests else tuple(dict.fromkeys(s for m in mutants if (m.dtype or "float32") == dtype
                                                          for s in m.stages))
        jobs.append(Job(f"control ({dtype})", "impl:TARGET", stages, dtype, control=True))
    for m in mutants:
        jobs.append(Job(m.name, f"spec.mutant_catalogue:{m.name}", m.stages, m.dtype))
    return jobs


def native_threads() -> int:
    """This process's OS threads (Linux), or -1 where unknown."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    except (OSError, StopIteration, ValueError):
        return -1


def warm_start() -> bool:
    """Collect the suite once in this process (imports torch, conftest and every test module, assertions
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
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        pytest.main(["tests", "--collect-only", "-qq", "-p", "no:cacheprovider", "-o", "addopts=",
                     "--target", "impl:TARGET"])
    import spec.mutant_catalogue  # noqa: F401
    return before > 0 and native_threads() == before


def pytest_args(job: Job, args, report: str) -> list[str]:
    """The pytest arguments of one run: the job's target, profile and stages, stopping after --maxfail failures."""
    argv = ["tests", "-p", "spec.mutant_plugin", "-q", "--no-header", "-p", "no:cacheprovider", "-o", "addopts=",
            "--target", job.target, "--profile", args.profile, "--mutant-report", report]
    if not job.control:  # a control runs every test, so that tests failing on impl itself are known
        argv += ["--maxfail", str(args.maxfail)]
    if job.dtype and job.control:
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
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
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
        job.detail = failures[0]["message"] if failures else f"{result['passed']} tests passed"
    else:
        job.status = "killed" if failures else "survived"
        job.detail = failures[0]["message"] if failures else (
            f"{result['passed']} tests passed" if result["collected"] else "no test checks these stages")


def run_all(jobs: list[Job], args) -> None:
    """Run the jobs, args.jobs at a time (controls first), each in its own process; progress on stderr."""
    fork = warm_start()
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


def main(argv=None) -> int:
    """`vitspec mutants`: run the catalogue, print the matrix and `killed K/N`; 0 iff all killed, controls pass."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
        mutants = select(args.only)
    except UsageError as e:
        print(f"vitspec mutants: error: {e}", file=sys.stderr)
        return 2
    if args.list:
        for m in mutants:
            print(f"{m.name:40} {','.join(m.stages):50} {m.dtype or 'float32':9} {m.bug_class}")
        return 0
    jobs = plan(mutants, args.all_tests)
    start = time.monotonic()
    run_all(jobs, args)
    discount_control_failures(jobs)
    rerun = [j for j in jobs if j.status == "unverified"]
    if rerun:  # the control fails some tests: run these mutants again without them
        broken = {c.dtype: c.killing_tests for c in jobs if c.control}
        for j in rerun:
            j.status, j.deselect = "pending", broken[j.dtype or "float32"]
        print(f"rerunning {len(rerun)} mutants without the {sum(map(len, broken.values()))} tests that fail on "
              "impl unmutated", file=sys.stderr)
        run_all(rerun, args)
    seconds = time.monotonic() - start
    out = sys.stderr if args.json == "-" else sys.stdout
    controls, mutant_jobs = [j for j in jobs if j.control], [j for j in jobs if not j.control]
    print(matrix(jobs), file=out)
    killed = sum(j.status == "killed" for j in mutant_jobs)
    for c in controls:
        if c.status != "passed":
            print(f"CONTROL FAILED: {c.name}: impl unmutated does not pass its own tests ({c.status}: {c.detail}); "
                  "the kill count means nothing until it does", file=out)
    survivors = [j.name for j in mutant_jobs if j.status != "killed"]
    if survivors:
        print(f"not killed: {', '.join(survivors)}", file=out)
    print(f"{len(jobs)} pytest runs in {seconds:.0f} s with -j {args.jobs}", file=out)
    print(f"killed {killed}/{len(mutant_jobs)}", file=out)
    if args.json:
        text = json.dumps(as_json(jobs, seconds), indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    if args.junitxml:
        write_junit(args.junitxml, jobs)
    return 0 if not survivors and all(c.status == "passed" for c in controls) else 1


if __name__ == "__main__":
    sys.exit(main())
