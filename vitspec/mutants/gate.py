"""`vitspec mutants`: run the property suite against every planted-bug mutant and gate on the kill rate.

    vitspec mutants [--dtype D[,D...]|all] [--profile mutation] [--json] [--output FILE] [--only NAME,...] [-j N]
                    [--junitxml FILE]

Every mutant runs at float32 and bfloat16, and at float16 when one of its stages does float arithmetic (a stage
with a tolerance row); a mutant that fixes its own dtype (a low-precision bug) runs at that dtype only. --dtype
selects the dtypes (default all); the gate passes only at 100% kills in each dtype run.

Each mutant (vitspec/mutants/catalogue.py) is checked in its own pytest process, ``--target
vitspec.mutants.catalogue:<name>``, on the tests of the stages its bug changes (--all-tests: every target test,
those stages first), stopping at the first failure. Then impl unmutated runs, as the control, every test that
killed a mutant, in that mutant's dtype: a kill counts only if the killing test passes on impl (a mutant killed
by a test that fails on impl runs again without it). Exit 0 when every mutant is killed and the control passes;
1 otherwise; 2 for bad arguments.

Mutation testing of the reference's integer and index code (mutmut 3.8, configured in setup.cfg [mutmut]),
from the repository root:

    rm -rf mutants && mutmut run --max-children 2 "vitspec.reference.windows.*" "vitspec.reference.tokens.*" \
        "vitspec.reference.patchify.x_patch_row_origin*" "vitspec.reference.patchify.x_patchify*" \
        "vitspec.reference.patchify.x_unpatchify*" "vitspec.reference.patchify.x_document_to_model_columns*" \
        "vitspec.reference.rope.x_rotary_position_ids*" "vitspec.reference.rope.x_inv_freq*" "vitspec.reference.resize.x_smart_resize*"
    mutmut export-cicd-stats && cat mutants/mutmut-cicd-stats.json && mutmut results
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from vitspec.mutants.report import as_json, matrix, write_junit
from vitspec.mutants.runner import Job, run_all, verify_kills


class UsageError(Exception):
    """Bad command-line input (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """A bad option is one line on stderr and exit 2, as everywhere in the command line."""
        raise UsageError(message)


def parse_args(argv):
    """The options of `vitspec mutants` (UsageError for a bad one)."""
    p = _Parser(
        prog="vitspec mutants",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dtype",
        default="all",
        metavar="D[,D...]|all",
        help="compute dtypes to run the catalogue at: float32, bfloat16, float16, comma-separated, or all (default)",
    )
    p.add_argument(
        "--profile",
        default="mutation",
        choices=["dev", "ci", "nightly", "mutation"],
        help="Hypothesis profile of every run (default mutation: few derandomized examples)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the results as JSON to stdout (the matrix and summary go to stderr)"
    )
    p.add_argument("--output", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--only", metavar="NAME,...", help="run only these mutants (comma-separated names)")
    p.add_argument(
        "-j", "--jobs", type=int, default=os.cpu_count() or 1, help="parallel pytest processes (default: CPU count)"
    )
    p.add_argument("--junitxml", metavar="FILE", help="write one JUnit test case per mutant (killed = pass)")
    p.add_argument("--maxfail", type=int, default=1, help="failures after which a mutant's run stops (default 1)")
    p.add_argument("--all-tests", action="store_true", help="run every target test on each mutant, its stages first")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest process (default 600)")
    p.add_argument("--list", action="store_true", help="print the catalogue and exit")
    p.add_argument(
        "--index-float32-only",
        action="store_true",
        help="run mutants whose stages do no float arithmetic at float32 only (the in-suite gate's setting)",
    )
    args = p.parse_args(argv)
    args.dtypes = parse_dtypes(args.dtype)
    if args.jobs < 1 or args.maxfail < 1 or args.timeout <= 0:
        raise UsageError("-j, --maxfail and --timeout must be positive")
    for flag, path in (("--output", args.output), ("--junitxml", args.junitxml)):
        if path and not Path(path).resolve().parent.is_dir():
            raise UsageError(f"{flag} {path!r}: the folder does not exist")
    return args


DTYPES = ("float32", "bfloat16", "float16")


def parse_dtypes(text: str) -> tuple[str, ...]:
    """--dtype: 'all' or a comma-separated subset of DTYPES, in DTYPES order."""
    names = list(DTYPES) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in DTYPES]
    if unknown or not names:
        raise UsageError(f"--dtype must be 'all' or a comma-separated subset of {list(DTYPES)}, got {text!r}")
    return tuple(d for d in DTYPES if d in names)


def dtypes_of(mutant, selected, index_float32_only: bool = False) -> list[str]:
    """The dtypes a mutant runs at: its own fixed dtype; else float32 and bfloat16, and float16 when one of its
    stages does float arithmetic (has a tolerance row); only those among `selected`. index_float32_only: a mutant
    whose stages do no float arithmetic runs at float32 only (its stages run the same integer code in any dtype)."""
    from vitspec.spec.protocol import STAGES

    if mutant.dtype:
        return [mutant.dtype] if mutant.dtype in selected else []
    if mutant.below_low_precision:
        return [d for d in selected if d == "float32"]
    float_stage = any(s.tolerance is not None for s in STAGES if s.name in mutant.stages)
    if index_float32_only and not float_stage:
        return [d for d in selected if d == "float32"]
    return [d for d in selected if d != "float16" or float_stage]


def select(only):
    """The catalogue entries named by --only (all when None)."""
    from vitspec.mutants.catalogue import BY_NAME, CATALOGUE

    if not only:
        return list(CATALOGUE)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise UsageError(f"unknown mutants {unknown}; see vitspec mutants --list")
    return [BY_NAME[n] for n in names]


def plan(mutants, dtypes=("float32",), index_float32_only: bool = False) -> list[Job]:
    """One pytest run per mutant and dtype, --target vitspec.mutants.catalogue:<name> --dtype <dtype>, on the stages
    its bug changes."""
    return [
        Job(f"{m.name}@{d}", f"vitspec.mutants.catalogue:{m.name}", m.stages, d, mutant=m.name)
        for m in mutants
        for d in dtypes_of(m, dtypes, index_float32_only)
    ]


def kill_table(jobs) -> list[str]:
    """One line per dtype: killed K/N at that dtype."""
    lines = []
    for d in DTYPES:
        runs = [j for j in jobs if (j.dtype or "float32") == d]
        if runs:
            lines.append(f"{d:9} killed {sum(j.status == 'killed' for j in runs)}/{len(runs)}")
    return lines


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
            print(
                f"{m.name:40} {','.join(m.stages):50} {','.join(dtypes_of(m, DTYPES)):24} {m.bug_class}"
                + (f" (float32 only: {m.below_low_precision})" if m.below_low_precision else "")
            )
        return 0
    mutant_jobs = plan(mutants, args.dtypes, args.index_float32_only)
    start = time.monotonic()
    run_all(mutant_jobs, args)
    controls = verify_kills(mutant_jobs, args)
    jobs = controls + mutant_jobs
    seconds = time.monotonic() - start
    out = sys.stderr if args.json else sys.stdout
    print(matrix(jobs), file=out)
    killed = sum(j.status == "killed" for j in mutant_jobs)
    for c in controls:
        if c.status != "passed":
            print(
                f"CONTROL FAILED: {c.name}: impl unmutated fails tests that killed mutants ({c.detail}); "
                "those kills do not count, and the suite must pass on impl before the gate means anything",
                file=out,
            )
    survivors = [j.name for j in mutant_jobs if j.status != "killed"]
    if survivors:
        print(f"not killed: {', '.join(survivors)}", file=out)
    print(f"{len(jobs)} pytest runs in {seconds:.0f} s with -j {args.jobs}", file=out)
    for line in kill_table(mutant_jobs):
        print(line, file=out)
    print(f"killed {killed}/{len(mutant_jobs)}", file=out)
    if args.json or args.output:
        text = json.dumps(as_json(jobs, seconds), indent=1)
        if args.json:
            print(text)
        if args.output:
            Path(args.output).write_text(text + "\n")
    if args.junitxml:
        write_junit(args.junitxml, jobs)
    return 0 if not survivors and all(c.status == "passed" for c in controls) else 1


if __name__ == "__main__":
    sys.exit(main())
