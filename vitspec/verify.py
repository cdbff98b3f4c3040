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
from vitspec.spec.protocol import DTYPES, STAGE_NAMES, capabilities, configured_target, default_target, provided_stages
from vitspec.tests.plugin import (
    DIFFERENCE,
    EXERCISED,
    FAILED_STAGE,
    NOT_RUN,
    PROFILES,
    REFERENCE_HELPER,
    helper_note,
    item_stages,
)

ROOT = Path(_suite.__file__).resolve().parent.parent  # the folder that holds the suite, tests/ (checkout or install)
TESTS = ROOT / "tests"
NOT_COVERED = "NOT COVERED:"
GROUPS = (
    "target",
    "reference conformance",
    "negative controls",
    "other checks (no stage marker)",
    "impl and reference modules (whatever the target)",
)


class UsageError(Exception):
    """A bad argument: one line on stderr, exit code 2."""


def test_groups(stages: list[str], conformance, negative: bool, modules: bool = False) -> list[tuple[str, str]]:
    """The (group, row) pairs a test counts in: target tests once per protocol stage they are marked with (its
    stages under check and its helper stages).

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
    """A pytest plugin that records each test's outcome with its stage rows and prints progress per file.

    From each test's call report it also reads the plugin's user_properties: the stages whose target method the
    test called (vitspec_exercised), the stage a failed check named (vitspec_failed_stage), the recorded
    differences (vitspec_difference, "stage: form: detail"), the marked stages the target lacks in a test that ran
    for its other stages (vitspec_not_run: not covered on that row) and the helper stages it took from the reference
    (vitspec_reference_helper, "row: helper")."""

    def __init__(self, stream=None, progress: bool = True):
        self.stream = stream if stream is not None else sys.stderr  # the stderr of now, not of import time
        self.progress = progress  # per-file lines; off when pytest's own terminal output runs (options after --)
        self.rows: dict[str, list[tuple[str, str]]] = {}
        self.outcome: dict[str, tuple[str, str]] = {}
        self.failures: list[tuple[str, str]] = []
        self.per_file: Counter = Counter()
        self.done: dict[str, Counter] = defaultdict(Counter)
        self.exercised: dict[str, set] = defaultdict(set)
        self.failed_stages: dict[str, set] = defaultdict(set)
        self.differences: dict[str, list[str]] = defaultdict(list)
        self.not_run: dict[str, set] = defaultdict(set)
        self.helpers: dict[str, set] = defaultdict(set)

    def pytest_collection_finish(self, session):
        for item in session.items:
            stages = item_stages(item)
            self.rows[item.nodeid] = test_groups(
                stages,
                item.get_closest_marker("conformance"),
                item.get_closest_marker("negative_control") is not None,
                item.get_closest_marker("modules") is not None,
            )
            self.per_file[item.nodeid.split("::")[0]] += 1
        print(
            f"vitspec verify: {len(session.items)} checks in {len(self.per_file)} files", file=self.stream, flush=True
        )

    def pytest_collectreport(self, report):
        if report.failed:
            self.outcome[report.nodeid] = ("failed", "collection error")
            self.rows[report.nodeid] = [("target", "(collection)")]
            self.failures.append((report.nodeid, str(report.longrepr)))

    def pytest_runtest_logreport(self, report):
        node = report.nodeid
        for key, value in getattr(report, "user_properties", ()):
            if key == EXERCISED:
                self.exercised[node].add(value)
            elif key == FAILED_STAGE:
                self.failed_stages[node].add(value)
            elif key == DIFFERENCE and value not in self.differences[node]:
                self.differences[node].append(str(value))
            elif key == NOT_RUN:
                self.not_run[node].add(value)
            elif key == REFERENCE_HELPER:
                self.helpers[node].add(value)
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
        if report.when == "teardown" and self.progress:
            self._progress(node)

    def _progress(self, node: str):
        path = node.split("::")[0]
        self.done[path][self.outcome.get(node, ("passed",))[0]] += 1
        counts = self.done[path]
        if sum(counts.values()) == self.per_file[path]:
            parts = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "not covered", "skipped") if counts[k])
            print(f"  {path:40} {parts}", file=self.stream, flush=True)

    def row_kind(self, node: str, group: str, row: str, provided) -> tuple[str, str]:
        """How one test counts on one row: passed, failed, failed elsewhere (a check of another of its stages
        failed), not covered (the target lacks the row's stage, also in a test that ran for its other stages), or
        skipped (with the reason)."""
        if group == "target" and row in self.not_run.get(node, ()):
            return "not covered", f"{NOT_COVERED} target lacks stage {row}"
        kind, reason = self.outcome.get(node, ("skipped", "did not run"))
        stages = [r for g, r in self.rows.get(node, ()) if g == "target"]
        if kind == "failed" and group == "target":
            named = self.failed_stages.get(node, set()) & set(stages)
            return ("failed" if not named or row in named else "elsewhere"), ""
        if kind == "not covered" and group == "target" and provided is not None and row in provided:
            lacking = reason.split("lacks stage", 1)
            why = (
                f"needs {lacking[1].strip()}, which the target lacks"
                if len(lacking) == 2
                else reason.removeprefix(NOT_COVERED).strip()
            )
            return "skipped", why
        return kind, (reason if kind in ("skipped", "not covered") else "")

    def table(self, provided=None) -> dict:
        """{group: {row: Counter(checks, exercised, passed, failed, elsewhere, not covered, skipped)}}; provided:
        the stages the target has (None: unknown), so a stage it has is never counted as not covered."""
        out: dict = {g: defaultdict(Counter) for g in GROUPS}
        for node, rows in self.rows.items():
            for group, row in rows:
                kind, _ = self.row_kind(node, group, row, provided)
                out[group][row]["checks"] += 1
                out[group][row][kind] += 1
                if group == "target" and row in self.exercised.get(node, ()):
                    out[group][row]["exercised"] += 1
        return out

    def skip_reasons(self, provided=None) -> dict[str, Counter]:
        """{target row: Counter(reason)} of the target checks that were skipped on a row."""
        out: dict = defaultdict(Counter)
        for node, rows in self.rows.items():
            for group, row in rows:
                kind, why = self.row_kind(node, group, row, provided)
                if group == "target" and kind == "skipped":
                    out[row][why] += 1
        return out

    def reference_helpers(self) -> dict[str, Counter]:
        """{target row: Counter(helper)}: the checks of a row that ran (passed or failed) with a helper stage taken
        from the reference, because the target lacks it."""
        out: dict = defaultdict(Counter)
        for node, entries in self.helpers.items():
            if self.outcome.get(node, ("",))[0] not in ("passed", "failed"):
                continue
            for entry in entries:
                row, _, helper = entry.partition(": ")
                out[row][helper] += 1
        return out

    def recorded_differences(self) -> dict[str, Counter]:
        """{stage: Counter("form: detail")} from the tests' recorded differences."""
        out: dict = defaultdict(Counter)
        for entries in self.differences.values():
            for entry in entries:
                stage, _, rest = entry.partition(": ")
                out[stage][rest or stage] += 1
        return out


COLUMNS = ("checks", "exercised", "passed", "failed", "elsewhere", "not covered", "skipped")
_STAGE_INDEX = {s: i for i, s in enumerate(STAGE_NAMES)}


def stage_order(row: str, stage: str | None = None) -> tuple[int, str]:
    """Sort key: rows in pipeline order of their stage (row itself unless given), other rows last, then by name."""
    return _STAGE_INDEX.get(row if stage is None else stage, len(_STAGE_INDEX)), row


def format_table(table: dict, title: str, provided=None, inline=None) -> str:
    """The per-stage table. exercised: checks that called the target's method for that stage; elsewhere: checks
    that failed on another of their stages. A stage the target lacks is NOT COVERED, with the reason the target
    declares (capabilities["inline"]) when it gives one."""
    inline = inline or {}
    lines = [f"{'stage':32}" + "".join(f"{c:>12}" for c in COLUMNS)]
    for group in GROUPS:
        rows = table[group]
        if not rows:
            continue
        lines.append(title if group == "target" else group)
        for row in sorted(rows, key=lambda r: stage_order(r, r.split(" vs ")[0])):
            c = rows[row]
            if c["failed"]:
                mark = "  FAIL"
            elif group == "target" and provided is not None and row in STAGE_NAMES and row not in provided:
                mark = f"  NOT COVERED: {inline[row]}" if row in inline else "  NOT COVERED (target lacks it)"
            elif group == "target" and provided is None and c["not covered"] == c["checks"]:
                mark = "  NOT COVERED"
            else:
                mark = ""
            cols = COLUMNS if group == "target" else tuple(k for k in COLUMNS if k != "exercised")
            lines.append(f"  {row:30}" + "".join(f"{c[k]:>12}" if k in cols else f"{'':>12}" for k in COLUMNS) + mark)
    return "\n".join(lines)


def format_notes(skips: dict, differences: dict, helpers: dict | None = None) -> str:
    """Skipped target checks of stages the target has (with why), the checks that built inputs with a reference
    helper (the target lacks the helper stage; the row's stage was checked on the target), and the recorded
    differences per stage."""
    lines = []
    if skips:
        lines.append("skipped target checks (stages the target has)")
        for row in sorted(skips, key=stage_order):
            for why, n in sorted(skips[row].items()):
                lines.append(f"  {row}: {n} skipped: {why}")
    if helpers:
        lines.append("checks with a reference helper (the stage on the left was checked on the target)")
        for row in sorted(helpers, key=stage_order):
            for helper, n in sorted(helpers[row].items()):
                lines.append(f"  {helper_note(row, helper, n)}")
    if differences:
        lines.append("recorded differences (the spec allows them; not failures)")
        for stage in sorted(differences, key=stage_order):
            for what, n in sorted(differences[stage].items()):
                lines.append(f"  {stage}: {what} ({n} check{'s' if n != 1 else ''})")
    return "\n".join(lines)


def inline_reasons(target) -> dict[str, str]:
    """The target's capabilities["inline"]: {stage: why it has no method for it}."""
    return dict(capabilities(target).inline)


def failure_excerpt(text: str, limit: int = 30) -> str:
    """The error lines of a pytest failure (the check's message, Hypothesis's falsifying example)."""
    lines = [ln[4:] for ln in text.splitlines() if ln.startswith("E   ")]
    lines = lines or text.splitlines()[-limit:]
    return "\n".join(lines[:limit])


def build_parser() -> argparse.ArgumentParser:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError(message)

    p = Parser(
        prog="vitspec verify",
        description="Run the property suite on a target and print a per-stage "
        "report (stages the target lacks are NOT COVERED, never passed).",
        usage="vitspec verify [options] [-- PYTEST_OPTIONS...]",
        epilog="Options after -- go to pytest as they are (e.g. -- -x -n 2 --lf --hypothesis-show-statistics). "
        "Exit codes: 0 no check failed, 1 a check failed or nothing ran, 2 bad arguments.",
    )
    p.add_argument(
        "--target", default=None, help="package.module:attr (default $VITSPEC_TARGET or vitspec.impl:TARGET)"
    )
    p.add_argument("--profile", choices=PROFILES, default="ci", help="Hypothesis profile (default ci)")
    p.add_argument("--device", default=None, help="cpu or cuda, applied with the target's with_options")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="compute dtype, applied with with_options")
    p.add_argument("--max-examples", type=int, default=None, help="examples per property (overrides the profile)")
    p.add_argument("--junitxml", metavar="FILE", default=None, help="also write a JUnit XML report")
    p.add_argument("-k", dest="keyword", metavar="EXPR", default=None, help="only tests matching EXPR (pytest -k)")
    p.add_argument(
        "--self-checks",
        action="store_true",
        help="also run the suite's own checks (reference conformance, negative controls, impl and "
        "reference modules, the tool); by default only the target's checks run",
    )
    return p


def cache_dir(target: str = "") -> Path:
    """pytest's cache (for --lf, --ff, --sw after --) in the user's cache folder, never the working directory; one
    per target, so --lf reruns what failed on this target."""
    import os
    import re

    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", target) or "default"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vitspec" / "pytest" / name


def uses_workers(extra: list[str]) -> bool:
    """Whether the pytest options after -- start xdist workers (-n N, -nN, --numprocesses, --dist other than no)."""
    for i, a in enumerate(extra):
        value = None
        if a in ("-n", "--numprocesses"):
            value = extra[i + 1] if i + 1 < len(extra) else None
        elif a.startswith("--numprocesses="):
            value = a.split("=", 1)[1]
        elif a.startswith("-n") and not a.startswith("--"):
            value = a[2:]
        if value is not None and value not in ("0",):
            return True
    return False


def check_pytest_options(args) -> None:
    """A UsageError (one line) for a -k expression or an option after -- that pytest would reject, before the run:
    pytest itself would print its whole usage block."""
    if args.keyword is not None:
        try:
            from _pytest.mark.expression import Expression
        except ImportError:  # a pytest without this module: pytest reports the expression itself
            Expression = None
        if Expression is not None:
            try:
                Expression.compile(args.keyword)
            except Exception as e:
                raise UsageError(f"-k {args.keyword!r} is not a pytest keyword expression ({e})") from None
    if not args.pytest_extra:
        return
    import pytest

    try:
        from _pytest.config import _prepareconfig
    except ImportError:
        return
    try:
        config = _prepareconfig(pytest_args(args) + ["--collect-only"], plugins=[])
    except pytest.UsageError as e:
        lines = [ln.strip() for arg in e.args for ln in str(arg).splitlines() if ln.strip()]
        said = next((ln.split("error:", 1)[1].strip() for ln in lines if "error:" in ln), lines[0] if lines else "")
        raise UsageError(f"pytest rejects the options after --: {said}") from None
    config._ensure_unconfigure()


def pytest_args(args) -> list[str]:
    """pytest's arguments; options after -- are appended as given, and then pytest's own terminal output is kept
    (-v, -x, --hypothesis-show-statistics print through it)."""
    extra = list(getattr(args, "pytest_extra", []))
    argv = [
        str(TESTS),
        "--rootdir",
        str(ROOT),
        "-o",
        "addopts=",
        "-o",
        f"cache_dir={cache_dir(args.target)}",
        "--target",
        args.target,
        "--profile",
        args.profile,
        "--checks",
        "all" if getattr(args, "self_checks", False) else "target",
    ]
    if not extra:
        argv[1:1] = ["-p", "no:terminal"]
    for opt, value in (
        ("--device", args.device),
        ("--dtype", args.dtype),
        ("--max-examples", args.max_examples),
        ("--junitxml", args.junitxml),
        ("-k", args.keyword),
    ):
        if value is not None:
            argv += [opt, str(value)]
    argv += extra
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # everything after the first "--" goes to pytest unchanged
    argv, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    try:
        args = build_parser().parse_args(argv)
        args.pytest_extra = extra
        if args.device and args.device.startswith("cuda"):  # other device names are the target's to judge
            from vitspec.cli import check_device

            check_device(args.device)
        args.target = args.target or default_target()
        if args.max_examples is not None and args.max_examples < 1:
            raise UsageError(f"--max-examples must be a positive integer, got {args.max_examples}")
        if not TESTS.is_dir():
            raise UsageError(
                f"the test suite is not installed beside the package ({TESTS} is missing); "
                f"install vitspec from a checkout with pip install -e"
            )
        check_pytest_options(args)
        try:
            target = configured_target(args.target, args.device, args.dtype)
        except (UsageError, ValueError, TypeError):
            raise
        except Exception as e:  # the target's own module failed (an import error, a syntax error): where, in one line
            import traceback

            last = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
            where = f" at {last.filename}:{last.lineno}" if last else ""
            if isinstance(e, SyntaxError) and e.filename:
                where = f" at {e.filename}:{e.lineno}"
            raise UsageError(f"--target {args.target}: loading it raised {type(e).__name__}: {e}{where}") from None
        capabilities(target)  # a bad declaration: one usage line before the run
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except (UsageError, ValueError, TypeError) as e:
        print(f"vitspec verify: error: {e}", file=sys.stderr)
        return 2
    import pytest

    collector = Collector(progress=not args.pytest_extra)  # with options after --, pytest prints its own progress
    if uses_workers(args.pytest_extra):
        # under xdist the workers collect, so the stage markers are read here first, in a collect-only pass
        import argparse as _argparse

        only = _argparse.Namespace(**{**vars(args), "pytest_extra": []})
        pytest.main(pytest_args(only) + ["--collect-only"], plugins=[collector])
    code = int(pytest.main(pytest_args(args), plugins=[collector]))
    if code == int(pytest.ExitCode.USAGE_ERROR):
        print("vitspec verify: error: pytest rejected the arguments (see above)", file=sys.stderr)
        return 2
    for node, text in collector.failures:
        print(f"\nFAILED {node}\n{failure_excerpt(text)}")
    title = (
        f"target {args.target} ({getattr(target, 'name', '?')}, {getattr(target, 'dtype', 'float64')}, "
        f"{getattr(target, 'device', 'cpu')})"
    )
    provided = set(provided_stages(target))
    table = collector.table(provided)
    print("\n" + format_table(table, title, provided, inline_reasons(target)))
    notes = format_notes(
        collector.skip_reasons(provided), collector.recorded_differences(), collector.reference_helpers()
    )
    if notes:
        print("\n" + notes)
    missing = sorted(r for r, c in table["target"].items() if c["not covered"] and r not in provided)
    nodes = Counter(kind for kind, _ in collector.outcome.values())
    oracle_missing = sum(1 for kind, why in collector.outcome.values() if why.startswith("UPSTREAM ORACLE MISSING"))
    verdict = "PASS" if nodes["failed"] == 0 and code in (0, 1) and collector.outcome else "FAIL"
    if not collector.outcome:
        print("\nFAIL: no checks ran" + (f" (-k {args.keyword!r} selected none)" if args.keyword else ""))
        return 1
    print(
        f"\n{verdict}: {len(collector.outcome)} tests: {nodes['passed']} passed, {nodes['failed']} failed, "
        f"{nodes['not covered']} not covered, {nodes['skipped']} skipped"
        + (f" ({oracle_missing} UPSTREAM ORACLE MISSING)" if oracle_missing else "")
        + (f"; stages not covered (the target lacks them): {', '.join(missing)}" if missing else "")
        + f"; profile {args.profile}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
