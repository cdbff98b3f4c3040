"""`vitspec mutants`: run the property suite against every planted-bug mutant and gate on the kill rate.

    vitspec mutants [--profile mutation] [--json FILE|-] [--only NAME,...] [-j N] [--junitxml FILE]

Each mutant (spec/mutant_catalogue.py) is checked in its own pytest process, ``--target
spec.mutant_catalogue:<name>``, on the tests of the stages its bug changes (--all-tests: every target test,
those stages first), stopping at the first failure. impl unmutated runs first as the control, once per
dtype the mutants use, on the same tests: it must pass, or the gate means nothing. Exit 0 when the control
passes and every mutant is killed; 1 otherwise; 2 for bad arguments.

Mutation testing of the reference's integer and index code (mutmut 3.8, configured in setup.cfg [mutmut]):

    rm -rf mutants && /work/venv/bin/mutmut run && /work/venv/bin/mutmut results
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from spec.protocol import STAGES

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = tuple(dict.fromkeys(s.module for s in STAGES))  # matrix columns: the stage groups, in pipeline order
MODULE_OF = {s.name: s.module for s in STAGES}


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


def parse_args(argv):
    p = argparse.ArgumentParser(prog="vitspec mutants", description=__doc__.split("\n\n")[0],
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
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        if e.code == 0:
            raise
        raise UsageError("bad arguments (see vitspec mutants --help)") from None
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


def child_env(jobs: int) -> dict:
    """The environment of one pytest process: project on the path, threads shared out, no parent pytest state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VITSPEC_TARGET"))}
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])), OMP_NUM_THREADS=threads,
               MKL_NUM_THREADS=threads, PYTHONHASHSEED="0")
    return env


def pytest_command(job: Job, args, report: str, all_tests: bool) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "tests", "-p", "spec.mutant_plugin", "-q", "--no-header", "-p",
           "no:cacheprovider", "-o", "addopts=", "--target", job.target, "--profile", args.profile,
           "--maxfail", str(args.maxfail), "--mutant-report", report]
    if job.dtype and job.control:
        cmd += ["--dtype", job.dtype]
    stages = list(job.stages)
    if all_tests and stages:  # every target test, the bug's own stages first
        stages += [s.name for s in STAGES if s.name not in stages]
    if stages:
        cmd += ["--mutant-stages", ",".join(stages)]
    return cmd


def run_job(job: Job, args, env: dict, workdir: str) -> Job:
    """Run one pytest process and classify it: control passed/failed, mutant killed/survived, or error."""
    report = os.path.join(workdir, job.target.replace(":", "_") + f"_{job.dtype}.json")
    start = time.monotonic()
    try:
        done = subprocess.run(pytest_command(job, args, report, args.all_tests), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        job.status, job.detail = "error", f"timed out after {args.timeout:.0f} s"
        job.seconds = time.monotonic() - start
        return job
    job.seconds = time.monotonic() - start
    try:
        with open(report) as f:
            result = json.load(f)
    except (OSError, ValueError):
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        job.status, job.detail = "error", f"pytest exit {done.returncode}: " + " | ".join(tail)
        return job
    failures = result["failures"]
    job.killing_tests = [f["nodeid"] for f in failures]
    job.failed_stages = sorted({s for f in failures for s in f["stages"]}, key=list(MODULE_OF).index)
    if done.returncode not in (0, 1, 5) or (done.returncode == 1 and not failures):
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        job.status, job.detail = "error", f"pytest exit {done.returncode}: " + " | ".join(tail)
    elif job.control:
        job.status = "failed" if failures else "passed"
        job.detail = failures[0]["message"] if failures else f"{result['passed']} tests passed"
    else:
        job.status = "killed" if failures else "survived"
        job.detail = failures[0]["message"] if failures else (
            f"{result['passed']} tests passed" if result["collected"] else "no test checks these stages")
    return job


def run_all(jobs: list[Job], args) -> None:
    """Run the jobs on args.jobs processes, controls first, reporting progress on stderr."""
    env = child_env(args.jobs)
    with tempfile.TemporaryDirectory(prefix="vitspec-mutants-") as workdir, \
            ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_job, job, args, env, workdir) for job in jobs]
        for n, future in enumerate(as_completed(futures), 1):
            job = future.result()
            first = job.killing_tests[0] if job.killing_tests else job.detail
            print(f"[{n}/{len(jobs)}] {job.status:8} {job.name} ({job.seconds:.1f} s) {first}", file=sys.stderr,
                  flush=True)


def matrix(jobs: list[Job]) -> str:
    """One row per mutant: X where a stage group's checks failed, . where the bug's stage held, then the verdict."""
    width = max(len(j.name) for j in jobs)
    head = " " * width + "  " + " ".join(c[:4].ljust(4) for c in COLUMNS) + "  result"
    lines = [head]
    for j in jobs:
        failed = {MODULE_OF[s] for s in j.failed_stages}
        declared = {MODULE_OF[s] for s in j.stages}
        cells = ("X" if c in failed else "." if c in declared else " " for c in COLUMNS)
        lines.append(f"{j.name:{width}}  " + " ".join(c.ljust(4) for c in cells) + f"  {j.status}"
                     + (f": {j.detail}" if j.status in ("survived", "error", "failed") else ""))
    return "\n".join(lines)


def as_json(jobs: list[Job], seconds: float) -> dict:
    from spec.mutant_catalogue import BY_NAME
    mutants = [j for j in jobs if not j.control]
    return {"killed": sum(j.status == "killed" for j in mutants), "total": len(mutants), "seconds": round(seconds, 1),
            "controls": [{"name": j.name, "dtype": j.dtype, "passed": j.status == "passed", "detail": j.detail,
                          "failed_tests": j.killing_tests} for j in jobs if j.control],
            "mutants": [{"name": j.name, "killed": j.status == "killed", "status": j.status,
                         "stages": list(j.stages), "bug_class": BY_NAME[j.name].bug_class,
                         "description": BY_NAME[j.name].description, "dtype": j.dtype or "float32",
                         "killing_tests": j.killing_tests, "failed_stages": j.failed_stages,
                         "detail": j.detail, "seconds": round(j.seconds, 1)} for j in mutants]}


def write_junit(path: str, jobs: list[Job]) -> None:
    """JUnit XML: one test case per control and mutant; a surviving mutant or failed control is a failure."""
    from xml.etree import ElementTree as ET
    bad = [j for j in jobs if j.status not in ("killed", "passed")]
    suite = ET.Element("testsuite", name="vitspec-mutants", tests=str(len(jobs)), failures=str(len(bad)))
    for j in jobs:
        case = ET.SubElement(suite, "testcase", classname="control" if j.control else "mutant", name=j.name,
                             time=f"{j.seconds:.2f}")
        if j in bad:
            ET.SubElement(case, "failure", message=f"{j.status}: {j.detail}"[:500])
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def main(argv=None) -> int:
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
