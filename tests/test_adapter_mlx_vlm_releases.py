"""The mlx-vlm adapter (vitspec.adapters.mlx_vlm) on the releases of the matrix (ports/mlx_vlm.toml) where what a
release takes differs from the current one: each runs in its own interpreter, the venv `vitspec ports --port mlx_vlm
--version V` builds (under $VITSPEC_PORTS_CACHE, default ~/.cache/vitspec/ports); the current release may also be
the one installed here. A release whose interpreter is not there is skipped, loudly and counted (UPSTREAM ORACLE
MISSING, with the command that builds it).

- preprocess: the video processor of 0.5.0 ... 0.6.5 takes (T, C, H, W) arrays only, later ones (T, H, W, C) as
  decoded; the adapter hands each release its own layout, and the pixels equal the reference's.
- attention_module (Qwen2-VL sibling): the failure of 0.3.12 explained in ports/mlx_vlm.toml is the release's own,
  its VisionModel fails on a video as the adapter's stage does, and a later release runs it."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest

from vitspec.tests import port_venvs
from vitspec.tests.report import ROOT

WITH_PROCESSORS = ("0.5.0", "0.7.10")  # the rows with mlx-vlm's own processors: channels first, channels last


def release_python(version: str) -> Path:
    """The interpreter of the venv `vitspec ports` built for mlx-vlm `version`, this one where it has that release,
    or a loud skip."""
    python = port_venvs.venv_python("mlx_vlm", "mlx-vlm", version)
    if python is not None:
        return python
    try:
        if metadata.version("mlx-vlm") == version:
            return Path(sys.executable)
    except metadata.PackageNotFoundError:
        pass
    port_venvs.missing("mlx_vlm", "mlx-vlm", version)


def run_child(version: str, child: str) -> dict:
    return port_venvs.run_child(release_python(version), child, version)


def test_releases_are_matrix_rows():
    """The releases here are rows of ports/mlx_vlm.toml (a checkout only: a wheel has no ports/)."""
    toml = ROOT / "ports" / "mlx_vlm.toml"
    if not toml.is_file():
        pytest.skip("NOT COVERED: ports/mlx_vlm.toml is in the checkout only")
    import tomllib

    versions = tomllib.loads(toml.read_text())["versions"]
    assert {*WITH_PROCESSORS, "0.3.12"} <= set(versions), versions


@pytest.mark.parametrize("version", WITH_PROCESSORS)
def test_video_reaches_the_processor_in_the_layout_of_the_release(version):
    """A 2 x 56 x 84 video (no resize: the pixels are the frames rescaled and normalized) gives the reference's
    grid and pixels; 0.5.0 reads a (T, H, W, C) array as (T, C, H, W) ('height:84 or width:3 must be larger than
    factor:28'), so the adapter moves its channels first there."""
    got = run_child(version, "mlx_video_layout.py")
    assert got["channels_last"] is (version != "0.5.0"), got
    assert got["grid"] == got["ref_grid"] == [[1, 4, 6]], got
    assert got["max_diff"] < 1e-5, got


def test_qwen2_vl_attention_of_0_3_12_fails_in_its_own_tower():
    """Qwen2-VL's Attention in 0.3.12 keeps only the last segment's output (explained in ports/mlx_vlm.toml, fixed
    in 0.4.4): the release's own VisionModel runs one image and fails on a video and on two images."""
    got = run_child("0.3.12", "mlx_qwen2_vl_segments.py")
    assert got["image"] == "ok", got
    assert "[addmm]" in got["video"], got
    assert "[reshape] Cannot reshape" in got["two images"], got
    later = run_child(WITH_PROCESSORS[-1], "mlx_qwen2_vl_segments.py")
    assert later["image"] == later["video"] == later["two images"] == "ok", later
