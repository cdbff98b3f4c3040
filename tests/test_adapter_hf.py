"""The HF adapter (vitspec.adapters.hf) as a user runs it: it loads, declares what HF really does (cos/sin rotary,
images only, no input validation), a handful of stage checks pass through `vitspec verify`, and a bug planted in
HF's own function (its rotate_half) fails the stages that use it. Needs the hf extra (pip install 'vitspec[hf]');
without it these tests fail, loudly: CI installs it."""

from __future__ import annotations

import shutil
from pathlib import Path

from vitspec.spec.protocol import capabilities, provided_stages
from vitspec.tests.report import rows, verify

SOME_STAGES = (
    "test_rotary_position_ids_match_reference or test_rotary_cos_sin_matches_reference or "
    "test_apply_rotary_matches_reference or test_window_index_matches_reference or "
    "test_rms_norm_matches_reference"
)


def test_adapter_declares_what_hf_does():
    from vitspec.adapters import hf

    target = hf.TARGET()
    caps = capabilities(target)
    assert target.dtype == "float32" and caps.rotary == "cos_sin" and not caps.validates_inputs
    assert caps.media == ("image",) and caps.smart_resize_variants == ("hf",)
    assert "attention_module" in provided_stages(target) and "attention" not in provided_stages(target)
    assert not hasattr(hf, "float64_islands")  # HF's modules run unchanged


def test_adapter_stage_checks_pass():
    done = verify("vitspec.adapters.hf:TARGET", SOME_STAGES)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    table = rows(done.stdout)
    for stage in ("rotary_position_ids", "rotary_cos_sin", "apply_rotary", "window_index", "rms_norm"):
        assert table[stage]["passed"] > 0 and table[stage]["failed"] == 0, (stage, table.get(stage))
        assert table[stage]["exercised"] > 0, (stage, table[stage])


def test_planted_bug_in_hf_is_caught(tmp_path):
    """Negative control: HF's rotate_half swapped (in HF's module, as a bad release would ship it) for one that
    pairs adjacent elements fails apply_rotary; the stages that do not use it still pass."""
    shutil.copy(Path(__file__).resolve().parent / "children" / "planted_hf_port.py", tmp_path)
    done = verify("planted_hf_port:TARGET", SOME_STAGES, extra_path=[tmp_path])
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    table = rows(done.stdout)
    assert table["apply_rotary"]["mark"] == "FAIL", done.stdout[-3000:]
    for stage in ("rotary_position_ids", "rotary_cos_sin", "rms_norm"):
        assert table[stage]["mark"] != "FAIL", (stage, table[stage])
