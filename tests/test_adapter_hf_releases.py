"""The HF adapter (vitspec.adapters.hf) on the transformers 4.x releases of the matrix (ports/hf.toml): each runs in
its own interpreter, the venv `vitspec ports --port hf --version V` builds (under $VITSPEC_PORTS_CACHE, default
~/.cache/vitspec/ports), so every check here is a child process of that interpreter. A release whose venv is not
there is skipped, loudly and counted (UPSTREAM ORACLE MISSING, with the command that builds it).

Per release: the target is the layout that release has (index stages as methods of the vision model, cu_seqlens
declared inline), the stages whose HF code changed across 4.49 ... 4.57 (the index methods, the rotary table, the
attention class and its segment mask) pass through `vitspec verify`, and a bug planted in HF's own rot_pos_emb
fails the stage mapped onto it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vitspec.tests import port_venvs, subproc
from vitspec.tests.report import ROOT, rows

# the 4.x rows of ports/hf.toml: one per layout of the vision code (see the comment at the top of that file)
RELEASES = ("4.49.0", "4.51.3", "4.53.3", "4.54.1", "4.57.6")
STAGES = ("rotary_position_ids", "window_index", "rotary_angles", "apply_rotary", "attention_module")
SOME_CHECKS = (
    "test_rotary_position_ids_match_reference or test_window_index_matches_reference or "
    "test_rotary_angles_match_reference or test_apply_rotary_matches_reference or "
    "test_attention_module_matches_reference"
)


def release_python(version: str) -> Path:
    """The interpreter of the venv `vitspec ports` built for transformers `version`, or a loud skip."""
    return port_venvs.venv_python("hf", "transformers", version) or port_venvs.missing("hf", "transformers", version)


def verify_in(python: Path, target: str, keyword: str, extra_path=()):
    args = [python, "-m", "vitspec.cli", "verify", "--target", target, "--max-examples", "5", "-k", keyword]
    return subproc.run(args, cwd_=ROOT, env_=port_venvs.child_env(extra_path), timeout=900)


def test_releases_are_the_matrix_rows():
    """RELEASES are the 4.x versions ports/hf.toml covers (a checkout only: a wheel has no ports/)."""
    toml = ROOT / "ports" / "hf.toml"
    if not toml.is_file():
        pytest.skip("NOT COVERED: ports/hf.toml is in the checkout only")
    import tomllib

    versions = tomllib.loads(toml.read_text())["versions"]
    assert tuple(v for v in versions if v.startswith("4.")) == RELEASES
    assert versions[0] == "4.49.0"  # the first release with Qwen2.5-VL


@pytest.mark.parametrize("version", RELEASES)
def test_target_has_the_layout_of_the_release(version):
    python = release_python(version)
    got = port_venvs.run_child(python, "hf_release_layout.py", version, timeout=300)
    assert got["version"] == version and got["class"] == "HFModelMethods", got
    assert {"rotary_position_ids", "window_index", "rotary_angles", "attention_module", "vision_tower"} <= set(
        got["stages"]
    ), got
    assert "cu_seqlens" not in got["stages"] and "rotary_cos_sin" not in got["stages"], got
    assert got["inline"] == ["cu_seqlens", "num_image_tokens"], got


@pytest.mark.parametrize("version", RELEASES)
def test_stage_checks_pass_on_the_release(version):
    python = release_python(version)
    done = verify_in(python, "vitspec.adapters.hf:TARGET", SOME_CHECKS)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    table = rows(done.stdout)
    for stage in STAGES:
        assert table[stage]["passed"] > 0 and table[stage]["failed"] == 0, (stage, table.get(stage))
        assert table[stage]["exercised"] > 0, (stage, table[stage])


@pytest.mark.parametrize("version", (RELEASES[0], RELEASES[-1]))
def test_planted_bug_in_rot_pos_emb_is_caught(version, tmp_path):
    """Negative control: rotary_position_ids is HF's own rot_pos_emb. With rot_pos_emb planted to swap (row, col),
    as a bad release would ship it, the stage fails; the window index, another method of the same model, passes."""
    python = release_python(version)
    shutil.copy(port_venvs.CHILDREN / "planted_hf4_port.py", tmp_path)
    keyword = "test_rotary_position_ids_match_reference or test_window_index_matches_reference"
    done = verify_in(python, "planted_hf4_port:TARGET", keyword, extra_path=[tmp_path])
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    table = rows(done.stdout)
    assert table["rotary_position_ids"]["mark"] == "FAIL", done.stdout[-3000:]
    assert table["window_index"]["mark"] != "FAIL" and table["window_index"]["passed"] > 0, table["window_index"]
