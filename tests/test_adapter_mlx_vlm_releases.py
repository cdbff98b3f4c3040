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

import json
import os
import site
import sys
from importlib import metadata
from pathlib import Path

import pytest

from vitspec.tests import subproc
from vitspec.tests.plugin import ORACLE_MISSING
from vitspec.tests.report import ROOT

CACHE = Path(os.environ.get("VITSPEC_PORTS_CACHE", "~/.cache/vitspec/ports")).expanduser()
WITH_PROCESSORS = ("0.5.0", "0.7.10")  # the rows with mlx-vlm's own processors: channels first, channels last

VIDEO = (
    "import json\n"
    "import numpy as np\n"
    "from importlib import metadata\n"
    "import vitspec.reference.pixels as rpx\n"
    "from vitspec.adapters import mlx_vlm\n"
    "t = mlx_vlm.TARGET()\n"
    "video = np.random.default_rng(0).integers(0, 256, (2, 56, 84, 3), dtype=np.uint8)\n"
    "budgets = (3136, 12845056, 3136, 12845056)\n"
    "values, grid = t.preprocess([video], *budgets)\n"
    "ref_values, ref_grid = rpx.preprocess([video], *budgets, video_rule='frames_budget')\n"
    "print(json.dumps({'version': metadata.version('mlx-vlm'), "
    "'channels_last': mlx_vlm.video_takes_channels_last(mlx_vlm.load_processor_module()), "
    "'grid': grid.tolist(), 'ref_grid': ref_grid.tolist(), "
    "'max_diff': float(np.abs(values - ref_values).max())}))\n"
)

QWEN2_VL_TOWER = (
    "import json\n"
    "import mlx.core as mx\n"
    "from vitspec.adapters import mlx_vlm\n"
    "t = mlx_vlm.Qwen2VL()\n"
    "out = {'version': t.version}\n"
    "for name, grid in (('image', [[1, 4, 4]]), ('video', [[2, 4, 4]]), ('two images', [[1, 4, 4], [1, 2, 2]])):\n"
    "    model = t._model(depth=1, hidden_size=16, num_heads=2, in_channels=3, temporal_patch_size=2,\n"
    "                     patch_size=14, spatial_merge_size=2)\n"
    "    x = mx.random.normal((sum(a * b * c for a, b, c in grid), 3 * 2 * 14 * 14))\n"
    "    try:\n"
    "        mx.eval(model(x, mx.array(grid)))\n"
    "        out[name] = 'ok'\n"
    "    except ValueError as e:\n"
    "        out[name] = str(e)\n"
    "print(json.dumps(out))\n"
)


def _site_dirs() -> set[str]:
    return {*site.getsitepackages(), site.getusersitepackages()}


def child_env() -> dict:
    """The parent's environment and path, less its site-packages: those would shadow the venv's mlx-vlm."""
    keep = [p for p in sys.path if p and p not in _site_dirs()]
    return subproc.env(PYTHONPATH=os.pathsep.join(dict.fromkeys(keep)))


def release_python(version: str) -> Path:
    """The interpreter of the venv `vitspec ports` built for mlx-vlm `version`, this one where it has that release,
    or a loud skip."""
    venv = CACHE / f"mlx_vlm-{version}"
    python = venv / "bin" / "python"
    if (venv / ".vitspec-installed").is_file() and python.exists():
        return python
    try:
        if metadata.version("mlx-vlm") == version:
            return Path(sys.executable)
    except metadata.PackageNotFoundError:
        pass
    pytest.skip(
        f"{ORACLE_MISSING} mlx-vlm {version} (its venv {venv} is not built: vitspec ports --port mlx_vlm "
        f"--version {version})"
    )


def run_child(version: str, code: str) -> dict:
    done = subproc.run([release_python(version), "-c", code], cwd_=ROOT, env_=child_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["version"] == version, got
    return got


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
    got = run_child(version, VIDEO)
    assert got["channels_last"] is (version != "0.5.0"), got
    assert got["grid"] == got["ref_grid"] == [[1, 4, 6]], got
    assert got["max_diff"] < 1e-5, got


def test_qwen2_vl_attention_of_0_3_12_fails_in_its_own_tower():
    """Qwen2-VL's Attention in 0.3.12 keeps only the last segment's output (explained in ports/mlx_vlm.toml, fixed
    in 0.4.4): the release's own VisionModel runs one image and fails on a video and on two images."""
    got = run_child("0.3.12", QWEN2_VL_TOWER)
    assert got["image"] == "ok", got
    assert "[addmm]" in got["video"], got
    assert "[reshape] Cannot reshape" in got["two images"], got
    later = run_child(WITH_PROCESSORS[-1], QWEN2_VL_TOWER)
    assert later["image"] == later["video"] == later["two images"] == "ok", later
