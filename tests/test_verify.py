"""`vitspec verify` and the plugin where a port developer meets them: a target module in their own directory or on
their PYTHONPATH (also in the suite's child processes), --checks target|self|all, the call recorder and the per-stage
rows (exercised, FAIL on the failed stage only, failed elsewhere, recorded differences), a reproduce command that
works where verify ran, and runs that leave no files in the user's directory."""

from __future__ import annotations

import io
import shlex
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from vitspec.tests import checks, subproc
from vitspec.tests.plugin import DIFFERENCE, EXERCISED, FAILED_STAGE, Recorder
from vitspec.verify import COLUMNS, Collector, format_notes, format_table

SUITE = Path(__file__).resolve().parent
CHILDREN = SUITE / "children"  # the modules these tests copy into a user's folder
LEFT_BEHIND = {".hypothesis", ".pytest_cache", ".benchmarks"}


def user_files(folder: Path) -> set[str]:
    """What a run left in the user's folder besides the modules written there and Python's bytecode cache."""
    return {p.name for p in folder.iterdir() if p.suffix != ".py" and p.name != "__pycache__"}


# --- 1. child processes see the user's target -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["working directory", "PYTHONPATH"])
def test_subprocess_checks_import_the_users_target(tmp_path, where):
    """The tower's cross-process determinism check and the block's memory check start children that load the target:
    a target module found only in the working directory, or only on PYTHONPATH, loads there too."""
    home = tmp_path / ("lib" if where == "PYTHONPATH" else "work")
    home.mkdir()
    shutil.copy(CHILDREN / "usermod.py", home)
    run_in = tmp_path / "elsewhere" if where == "PYTHONPATH" else home
    run_in.mkdir(exist_ok=True)
    argv = subproc.python(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--target",
        "usermod:TARGET",
        f"{SUITE / 'test_determinism.py'}::test_tower_bit_identical_across_processes",
        f"{SUITE / 'test_extremes.py'}::test_full_width_window_block_memory_light",
    )
    done = subproc.run(argv, cwd_=run_in, env_=subproc.env([home] if where == "PYTHONPATH" else []), timeout=900)
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


# --- 2. --checks ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "which, ran",
    [
        ("target", {"test_target"}),
        ("self", {"test_conformance", "test_negative", "test_modules", "test_document", "test_unmarked"}),
        ("all", {"test_target", "test_conformance", "test_negative", "test_modules", "test_document", "test_unmarked"}),
    ],
)
def test_checks_option_selects_target_or_self_checks(tmp_path, which, ran):
    shutil.copy(CHILDREN / "planted_checks.py", tmp_path / "test_planted_checks.py")
    xml = tmp_path / "out.xml"
    done = subproc.run(
        subproc.python(
            "-m",
            "pytest",
            tmp_path / "test_planted_checks.py",
            "-p",
            "no:cacheprovider",
            "--target",
            "vitspec.reference:TARGET",
            "--checks",
            which,
            f"--junitxml={xml}",
        ),
        cwd_=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    names = {case.get("name") for case in ET.parse(xml).getroot().iter("testcase")}
    assert names == ran, (names, done.stdout[-1000:])
    deselected = 6 - len(ran)
    assert (f"{deselected} deselected" in done.stdout) == bool(deselected), done.stdout[-500:]


def test_bad_checks_value_is_a_usage_error(tmp_path):
    done = subproc.run(subproc.python("-m", "pytest", SUITE / "test_tokens.py", "--checks", "some"), cwd_=tmp_path)
    assert done.returncode == 4 and "--checks" in done.stderr and "invalid choice" in done.stderr, done.stderr[-500:]


# --- 3 and 4. the recorder, failed stages, recorded differences ----------------------------------------------------


class Dummy:
    name, dtype = "dummy", "float32"

    def __init__(self, scale=1):
        self.scale = scale

    def num_image_tokens(self, grid_thw, merge_size=2):
        return [self.scale]

    def with_options(self, **kw):
        return Dummy(scale=2)


def test_recorder_forwards_and_records_stage_calls():
    checks.CURRENT["called"] = set()
    wrapped = Recorder(Dummy())
    assert wrapped.name == "dummy" and wrapped.dtype == "float32" and wrapped.scale == 1
    assert getattr(wrapped, "cu_seqlens", None) is None  # a stage it lacks stays missing
    assert checks.CURRENT["called"] == set()
    assert wrapped.num_image_tokens([[1, 2, 2]]) == [1]
    assert checks.CURRENT["called"] == {"num_image_tokens"}
    checks.CURRENT["called"] = set()
    copy = wrapped.with_options(dtype="bfloat16")
    assert isinstance(copy, Recorder) and copy.num_image_tokens([[1, 2, 2]]) == [2]
    assert checks.CURRENT["called"] == {"num_image_tokens"}
    wrapped.scale = 5
    assert wrapped.num_image_tokens([[1, 2, 2]]) == [5]  # attributes are set on the target itself


def properties(xml: Path) -> dict[str, list[tuple[str, str]]]:
    return {
        case.get("name"): [(p.get("name"), p.get("value")) for p in case.iter("property")]
        for case in ET.parse(xml).getroot().iter("testcase")
    }


def test_failed_stage_and_exercised_stages_are_on_the_report(tmp_path):
    shutil.copy(CHILDREN / "attributed.py", tmp_path / "test_attributed.py")
    xml = tmp_path / "out.xml"
    done = subproc.run(
        subproc.python(
            "-m",
            "pytest",
            tmp_path / "test_attributed.py",
            "-p",
            "no:cacheprovider",
            "--target",
            "vitspec.reference:TARGET",
            f"--junitxml={xml}",
        ),
        cwd_=tmp_path,
    )
    assert done.returncode == 1, done.stdout[-2000:]
    props = properties(xml)
    assert props["test_two_stages"] == [(EXERCISED, "cu_seqlens"), (FAILED_STAGE, "cu_seqlens")], props
    assert props["test_plain_assert"] == [(EXERCISED, "window_index")], props
    assert "reproduce: " in done.stdout and f"{tmp_path / 'test_attributed.py'}::test_two_stages" in done.stdout


def report(node, when, outcome, props=(), longrepr=None):
    return SimpleNamespace(
        nodeid=node,
        when=when,
        failed=outcome == "failed",
        skipped=outcome == "skipped",
        passed=outcome == "passed",
        user_properties=list(props),
        longrepr=longrepr,
        longreprtext="E   planted",
    )


def fed_collector(reports, rows) -> Collector:
    c = Collector(stream=io.StringIO())
    c.rows = rows
    c.per_file = Counter(node.split("::")[0] for node in rows)
    for r in reports:
        c.pytest_runtest_logreport(r)
    return c


def test_table_fails_only_the_named_stage_and_lists_recorded_differences():
    two = [("target", "window_index"), ("target", "cu_seqlens")]
    rows = {"t.py::a": two, "t.py::b": two, "t.py::c": two, "t.py::d": [("target", "window_index")]}
    lacks = ("", 0, "Skipped: NOT COVERED: target x lacks stage cu_seqlens")
    c = fed_collector(
        [
            report("t.py::a", "call", "failed", [(EXERCISED, "cu_seqlens"), (FAILED_STAGE, "cu_seqlens")]),
            report("t.py::b", "call", "failed", [(EXERCISED, "window_index")]),  # no stage named: both rows fail
            report("t.py::c", "setup", "skipped", longrepr=lacks),
            report(
                "t.py::d",
                "call",
                "passed",
                [(EXERCISED, "window_index"), (DIFFERENCE, "window_index: empty windows kept: 2 zero-length windows")],
            ),
        ],
        rows,
    )
    table = c.table(provided={"window_index"})
    w, s = table["target"]["window_index"], table["target"]["cu_seqlens"]
    assert (w["checks"], w["failed"], w["elsewhere"], w["passed"], w["exercised"], w["skipped"]) == (4, 1, 1, 1, 2, 1)
    assert (s["checks"], s["failed"], s["elsewhere"], s["not covered"], s["exercised"]) == (3, 2, 0, 1, 1)
    text = format_table(table, "title", {"window_index"}, {"cu_seqlens": "computed inside the block"})
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert lines["window_index"].endswith("FAIL") and lines["cu_seqlens"].endswith("FAIL")
    notes = format_notes(c.skip_reasons({"window_index"}), c.recorded_differences())
    assert "window_index: 1 skipped: needs cu_seqlens, which the target lacks" in notes, notes
    assert (
        "recorded differences" in notes and "window_index: empty windows kept: 2 zero-length windows (1 check)" in notes
    ), notes


def test_table_says_not_covered_only_for_stages_the_target_lacks():
    rows = {"t.py::a": [("target", "cu_seqlens")], "t.py::b": [("target", "rms_norm")]}
    c = fed_collector(
        [
            report("t.py::a", "setup", "skipped", longrepr=("", 0, "NOT COVERED: target x lacks stage cu_seqlens")),
            report("t.py::b", "setup", "skipped", longrepr=("", 0, "NOT COVERED: capability media")),
        ],
        rows,
    )
    provided = {"rms_norm"}
    text = format_table(c.table(provided), "title", provided, {"cu_seqlens": "computed inline in the tower"})
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert lines["cu_seqlens"].endswith("NOT COVERED: computed inline in the tower"), lines
    assert "NOT COVERED" not in lines["rms_norm"] and "not covered" not in lines["rms_norm"].lower(), lines
    header = text.splitlines()[0].split()
    assert header[1:] == [w for col in COLUMNS for w in col.split()], header


# --- 5 and 6. verify from a user's directory: the report, the reproduce command, no files left -------------------


def test_reproduce_command_works_where_verify_ran(tmp_path):
    shutil.copy(CHILDREN / "token_counts.py", tmp_path)
    env = subproc.env(PYTHONPATH=None)  # vitspec comes from the installation, not from the checkout
    done = subproc.run(
        subproc.python("-m", "vitspec.cli", "verify", "--target", "token_counts:OFF_BY_ONE", "-k", "test_tokens"),
        cwd_=tmp_path,
        env_=env,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    fail_rows = [
        line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ") and line.rstrip().endswith("FAIL")
    ]
    assert fail_rows == ["num_image_tokens"], done.stdout[-3000:]
    commands = [line.split("reproduce: ", 1)[1] for line in done.stdout.splitlines() if "reproduce: " in line]
    assert commands, done.stdout[-3000:]
    argv = shlex.split(commands[0])
    node = next(a for a in argv if "::" in a)
    assert Path(node.split("::")[0]).is_absolute() and Path(node.split("::")[0]).is_file(), node
    assert argv[argv.index("--target") + 1] == "token_counts:OFF_BY_ONE" and "--profile" in argv, argv
    again = subproc.run(argv, cwd_=tmp_path, env_=env, timeout=600)
    assert again.returncode == 1 and "[num_image_tokens]" in again.stdout, again.stdout[-3000:] + again.stderr[-1000:]
    assert not user_files(tmp_path) & LEFT_BEHIND, user_files(tmp_path)


def test_default_runs_leave_no_files_in_the_users_directory(tmp_path):
    shutil.copy(CHILDREN / "token_counts.py", tmp_path)
    env = subproc.env(PYTHONPATH=None)
    done = subproc.run(
        subproc.python("-m", "vitspec.cli", "verify", "--target", "token_counts:TARGET", "-k", "test_tokens"),
        cwd_=tmp_path,
        env_=env,
        timeout=600,
    )
    assert done.returncode == 0 and "PASS" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
    row = next(line.split() for line in done.stdout.splitlines() if line.startswith("  num_image_tokens"))
    assert int(row[1 + COLUMNS.index("exercised")]) > 0, row
    assert user_files(tmp_path) == set(), user_files(tmp_path)
    done = subproc.run(
        subproc.python(
            "-m",
            "pytest",
            "--pyargs",
            "vitspec.tests",
            "--target",
            "token_counts:TARGET",
            "-q",
            "-k",
            "test_tokens",
            "--checks",
            "target",
        ),
        cwd_=tmp_path,
        env_=env,
        timeout=600,
    )
    assert done.returncode == 0 and " passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
    assert user_files(tmp_path) == set(), user_files(tmp_path)


def test_bad_capabilities_declaration_is_one_usage_line(tmp_path, monkeypatch, capsys):
    from vitspec.verify import main

    shutil.copy(CHILDREN / "badcaps.py", tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["--target", "badcaps:TARGET"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "rotary" in err and "cos_sin" in err, err


def test_an_exception_inside_the_target_gets_a_reproduce_command(tmp_path):
    """A target that raises (no check's mismatch) still prints a reproduce: command under its error."""
    shutil.copy(CHILDREN / "raising_target.py", tmp_path)
    args = subproc.python("-m", "vitspec.cli", "verify", "--target", "raising_target:TARGET", "-k", "worked_values")
    done = subproc.run(args, cwd_=tmp_path, env_=subproc.env([tmp_path]), timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    after = done.stdout.split("RuntimeError: kernel exploded", 1)
    assert len(after) == 2 and "reproduce: " in after[1].split("\n\n", 1)[0], done.stdout[-3000:]
