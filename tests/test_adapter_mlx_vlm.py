"""The mlx-vlm adapter (vitspec.adapters.mlx_vlm) as a user runs it: it loads only mlx-vlm's vision modules, a
handful of stage checks pass through `vitspec verify`, the empty windows it keeps are a recorded difference, and a
bug planted in the port's own function (its rotate_half) fails the checks of the stages that use it.

Needs the mlx extra (pip install 'vitspec[mlx]'); without it these tests fail, loudly: CI installs it."""

from __future__ import annotations

import shutil
from pathlib import Path

from vitspec.tests import subproc
from vitspec.tests.report import ROOT, rows, verify

CHILDREN = Path(__file__).resolve().parent / "children"  # the planted port, the module-loading script
ROPE_AND_WINDOWS = (
    "test_rotary_position_ids_match_reference or test_rotary_angles_match_reference or "
    "test_apply_rotary_matches_reference or test_window_index_matches_reference"
)


def test_adapter_loads_the_vision_module_only():
    done = subproc.run(subproc.python(CHILDREN / "mlx_loaded_modules.py"), cwd_=ROOT, env_=subproc.env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    name, sibling, init_file, modules = (p.strip() for p in done.stdout.split("|"))
    assert name.startswith("mlx-vlm ") and name.endswith("qwen2_5_vl") and sibling.endswith("qwen2_vl"), done.stdout
    assert init_file == "None", f"mlx_vlm/__init__.py ran: {init_file}"  # a stub parent package, not the real one
    assert "mlx_vlm.models.qwen2_5_vl.vision" in modules and "mlx_vlm.models.qwen2_5_vl.qwen2_5_vl" not in modules


def test_adapter_stage_checks_pass():
    done = verify("vitspec.adapters.mlx_vlm:TARGET", ROPE_AND_WINDOWS)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    table = rows(done.stdout)
    for stage in ("rotary_position_ids", "rotary_angles", "apply_rotary", "window_index"):
        assert table[stage]["passed"] > 0 and table[stage]["failed"] == 0, (stage, table.get(stage))
        assert table[stage]["exercised"] > 0, (stage, table[stage])
    assert "empty windows kept" in done.stdout, done.stdout[-4000:]  # recorded, not failed


def test_qwen2_vl_sibling_stage_checks_pass():
    done = verify("vitspec.adapters.mlx_vlm:QWEN2_VL", ROPE_AND_WINDOWS)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    table = rows(done.stdout)
    for stage in ("rotary_position_ids", "rotary_angles", "apply_rotary"):
        assert table[stage]["passed"] > 0 and table[stage]["failed"] == 0, (stage, table.get(stage))
    assert table["window_index"]["passed"] == 0  # Qwen2-VL has no windows: not covered, never passed


def test_planted_bug_in_the_port_is_caught(tmp_path):
    """Negative control: the port's rotate_half swapped for one that pairs adjacent elements (a real RoPE bug
    class) fails apply_rotary; the stages that do not use it still pass."""
    shutil.copy(CHILDREN / "planted_mlx_port.py", tmp_path)
    done = verify("planted_mlx_port:TARGET", ROPE_AND_WINDOWS, extra_path=[tmp_path])
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    table = rows(done.stdout)
    assert table["apply_rotary"]["mark"] == "FAIL", done.stdout[-3000:]
    for stage in ("rotary_position_ids", "rotary_angles", "window_index"):
        assert table[stage]["mark"] != "FAIL", (stage, table[stage])
