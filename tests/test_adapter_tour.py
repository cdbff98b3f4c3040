"""The README's adapter tour works as written: `vitspec verify` on the toy target of docs/examples reports
its three stages as passed and every other stage as not covered, and a planted bug in it fails the run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def verify(target: str, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    args = [sys.executable, "-m", "vitspec.cli", "verify", "--target", target, "--max-examples", "5",
            "-k", "test_tokens or test_windows or rms_norm"]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_toy_target_report(tmp_path):
    done = verify("docs.examples.toy_target:TARGET", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("PASS") and "window_index" in summary.split("not covered", 1)[1], summary
    for stage in ("cu_seqlens", "rms_norm", "num_image_tokens"):
        assert "NOT COVERED" not in rows[stage] and int(rows[stage].split()[2]) > 0, rows[stage]


def test_toy_target_with_a_planted_bug_fails(tmp_path):
    (tmp_path / "buggy_toy.py").write_text(
        "from docs.examples.toy_target import ToyTarget\n"
        "class Buggy(ToyTarget):\n"
        "    def num_image_tokens(self, grid_thw, merge_size=2):\n"
        "        return super().num_image_tokens(grid_thw, merge_size) + 1\n"
        "TARGET = Buggy()\n")
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{ROOT}{os.pathsep}{env_path}"
    try:
        done = verify("buggy_toy:TARGET", tmp_path)
    finally:
        os.environ["PYTHONPATH"] = env_path
    assert done.returncode == 1, done.stdout[-2000:]
    assert any(line.split()[0] == "num_image_tokens" and "FAIL" in line for line in done.stdout.splitlines()
               if line.startswith("  ")), done.stdout[-3000:]
