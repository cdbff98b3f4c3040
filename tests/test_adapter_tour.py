"""The README's adapter tour works as written: `vitspec verify` on the toy target of docs/examples reports
its three stages as passed and every other stage as not covered, and a planted bug in it fails the run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vitspec.tests import report
from vitspec.tests.report import ROOT, rows

pytestmark = pytest.mark.skipif(
    not (ROOT / "docs" / "examples" / "toy_target.py").is_file(),
    reason="the adapter tour runs in a checkout (docs/examples is not installed)",
)


def verify(target: str, extra_path=()) -> subprocess.CompletedProcess:
    """vitspec verify in a child, run from the checkout root (docs.examples is importable there)."""
    return report.verify(target, "test_tokens or test_windows or rms_norm", extra_path)


def test_toy_target_report():
    done = verify("docs.examples.toy_target:TARGET")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    table = rows(done.stdout)
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("PASS") and "window_index" in summary.split("not covered", 1)[1], summary
    for stage in ("cu_seqlens", "rms_norm", "num_image_tokens"):  # the toy's stages: checked, never not covered
        row = table[stage]
        assert "NOT COVERED" not in row["mark"] and row["not covered"] == 0, (stage, row)
        assert row["passed"] > 0 and row["exercised"] == row["passed"], (stage, row)
    assert table["window_index"]["mark"].startswith("NOT COVERED") and table["window_index"]["exercised"] == 0
    assert "cu_seqlens: 1 skipped: needs window_index, which the target lacks" in done.stdout, done.stdout[-3000:]


def test_toy_target_with_a_planted_bug_fails(tmp_path):
    shutil.copy(Path(__file__).resolve().parent / "children" / "buggy_toy.py", tmp_path)
    done = verify("buggy_toy:TARGET", extra_path=[tmp_path, ROOT])
    assert done.returncode == 1, done.stdout[-2000:]
    table = rows(done.stdout)
    assert table["num_image_tokens"]["mark"] == "FAIL", done.stdout[-3000:]
    assert all(row["mark"] != "FAIL" for stage, row in table.items() if stage != "num_image_tokens"), table
