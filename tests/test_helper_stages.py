"""Helper stages: a test marked ``@pytest.mark.stage("window_index", helpers=("cu_seqlens",))`` checks window_index, and
checks cu_seqlens too when the target has it; a target without cu_seqlens still gets its window_index checked, with
the reference's cu_seqlens building the input (``stage.or_reference``). The report stays truthful: the stages the
target lacks are not covered, the stages it has count as exercised, and each check that used a reference helper is
listed per stage. A target with none of a test's stages under check gets that test NOT COVERED, as before.

The end-to-end checks run `vitspec verify` in a child on the toy targets of tests/children/helper_stage_target.py.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vitspec import reference
from vitspec.tests import checks, subproc
from vitspec.tests.plugin import Stages
from vitspec.tests.report import ROOT, rows

CHILDREN = Path(__file__).resolve().parent / "children"
CONVERTED = (
    "test_vision_rows_equal_prompt_pads or test_grid_within_one_window or test_rope_invariants "
    "or test_largest_budget_metadata"
)


def verify(target: str, keyword: str, *pytest_extra: str):
    """vitspec verify --target helper_stage_target:`target` -k `keyword` at 5 examples, in a child."""
    args = subproc.python(
        "-m", "vitspec.cli", "verify", "--target", f"helper_stage_target:{target}", "--max-examples", "5", "-k", keyword
    )
    if pytest_extra:
        args += ["--", *pytest_extra]
    done = subproc.run(args, cwd_=ROOT, env_=subproc.env([CHILDREN]), timeout=900)
    return done, done.stdout[-4000:] + done.stderr[-2000:]


# --- the stage fixture ------------------------------------------------------------------------------------------


class WithoutCuSeqlens:
    name = "no-cu-seqlens"

    def window_index(self, grid_thw):
        return reference.TARGET.window_index(grid_thw)


class WithCuSeqlens(WithoutCuSeqlens):
    def cu_seqlens(self, grid_thw):
        return np.array([0, 1])


def running(monkeypatch, *marks) -> None:
    """Make the running test look, to the stage fixture, like a test with these stage marks."""
    item = SimpleNamespace(nodeid="t.py::test", iter_markers=lambda name: [m.mark for m in marks])
    monkeypatch.setitem(checks.CURRENT, "item", item)
    monkeypatch.setitem(checks.CURRENT, "helpers", set())


def test_or_reference_takes_the_targets_helper_when_it_has_one(monkeypatch):
    running(monkeypatch, pytest.mark.stage("window_index", helpers=("cu_seqlens",)))
    stage = Stages(WithCuSeqlens())
    assert stage.provides("cu_seqlens") and stage.provides("window_index")
    assert stage.or_reference("cu_seqlens")([[1, 2, 2]]).tolist() == [0, 1]  # the target's own, checked as a chain
    assert checks.CURRENT["helpers"] == set()


def test_or_reference_takes_the_references_helper_and_notes_it(monkeypatch):
    running(monkeypatch, pytest.mark.stage("window_index", helpers=("cu_seqlens",)))
    stage = Stages(WithoutCuSeqlens())
    assert not stage.provides("cu_seqlens")
    fn = stage.or_reference("cu_seqlens")
    assert fn == reference.TARGET.cu_seqlens and fn([[2, 2, 4]]).tolist() == [0, 8, 16]
    assert checks.CURRENT["helpers"] == {"cu_seqlens"}


def test_or_reference_only_for_a_declared_helper(monkeypatch):
    """A stage not marked as a helper (or not a stage at all) is a mistake in the test, not a silent fallback."""
    running(monkeypatch, pytest.mark.stage("window_index", "cu_seqlens"))
    stage = Stages(WithoutCuSeqlens())
    with pytest.raises(ValueError, match=r"not a helper stage .*helpers=\('cu_seqlens',\)"):
        stage.or_reference("cu_seqlens")
    with pytest.raises(ValueError, match="stage must be one of"):
        stage.or_reference("cu_seqlen")
    assert checks.CURRENT["helpers"] == set()


# --- end to end: vitspec verify on toy targets without helper stages -----------------------------------------------


def test_checks_with_helper_stages_run_on_a_target_that_lacks_the_helpers():
    """The toy has smart_resize, rotary_position_ids, window_index, apply_rotary and vision_tower, and lacks
    num_image_tokens, cu_seqlens and rotary_angles: every converted check runs and exercises the toy's stages (the
    tower's rows are checked against the reference's token count), the lacking stages are not covered, and the
    report names each reference helper per stage, never "needs ..., which the target lacks"."""
    done, out = verify("TARGET", CONVERTED, "-q")
    assert done.returncode == 0 and "\nPASS" in done.stdout, out
    table = rows(done.stdout)
    for name, n in [
        ("vision_tower", 1),
        ("window_index", 2),
        ("apply_rotary", 1),
        ("smart_resize", 1),
        ("rotary_position_ids", 1),
    ]:
        row = table[name]
        assert (row["checks"], row["passed"], row["exercised"], row["not covered"]) == (n, n, n, 0), (name, row, out)
    for name, n in [("num_image_tokens", 2), ("cu_seqlens", 2), ("rotary_angles", 1)]:
        row = table[name]
        assert (row["checks"], row["not covered"], row["passed"], row["exercised"]) == (n, n, 0, 0), (name, row, out)
        assert row["mark"] == "NOT COVERED (target lacks it)", (name, row)
    assert "which the target lacks" not in done.stdout, out
    for row, helper in [
        ("vision_tower", "num_image_tokens"),
        ("window_index", "cu_seqlens"),
        ("apply_rotary", "rotary_angles"),
    ]:
        note = f"{row}: 1 check took {helper} from the reference, to build inputs only (the target lacks {helper})"
        assert f"  {note}\n" in done.stdout, (note, out)
        assert f"REFERENCE HELPER: {note}" in done.stdout, (note, out)  # pytest's own summary says it too
    assert "NOT COVERED: num_image_tokens in 2 checks that ran for the target's other stages" in done.stdout, out


def test_a_window_index_bug_is_caught_without_the_targets_cu_seqlens():
    """window_index with 2 x 2-cell windows on a target without cu_seqlens: the one-window check (window segments
    equal to the full segments, here the reference's) fails on window_index, and only there."""
    done, out = verify("WINDOW_BUG", "test_grid_within_one_window")
    assert done.returncode == 1, out
    table = rows(done.stdout)
    assert table["window_index"]["mark"] == "FAIL" and table["window_index"]["exercised"] == 1, out
    assert table["cu_seqlens"]["not covered"] == 1 and table["cu_seqlens"]["failed"] == 0, out
    assert "[window_index] a grid within one window must keep raster order and the full segments" in done.stdout, out


def test_a_target_with_only_the_helper_stage_is_not_covered():
    """A target with cu_seqlens but no window_index: the check of window_index does not run (cu_seqlens is only its
    helper), the window_index row is NOT COVERED and the cu_seqlens row says why its check was skipped."""
    done, out = verify("HELPER_ONLY", "test_grid_within_one_window")
    assert done.returncode == 0, out
    table = rows(done.stdout)
    assert table["window_index"]["not covered"] == 1 and table["window_index"]["mark"].startswith("NOT COVERED"), out
    cu = table["cu_seqlens"]
    assert (cu["checks"], cu["skipped"], cu["exercised"], cu["passed"]) == (1, 1, 0, 0), out
    assert "cu_seqlens: 1 skipped: needs window_index, which the target lacks" in done.stdout, out
    assert "took cu_seqlens from the reference" not in done.stdout, out
