"""Run in an mlx-vlm release's venv by tests/test_adapter_mlx_vlm_releases.py: the adapter's preprocess of one video
against the reference's frames_budget rule, and the video layout it chose for that release, as one JSON line."""

import json
from importlib import metadata

import numpy as np

import vitspec.reference.pixels as rpx
from vitspec.adapters import mlx_vlm

t = mlx_vlm.TARGET()
video = np.random.default_rng(0).integers(0, 256, (2, 56, 84, 3), dtype=np.uint8)
budgets = (3136, 12845056, 3136, 12845056)
values, grid = t.preprocess([video], *budgets)
ref_values, ref_grid = rpx.preprocess([video], *budgets, video_rule="frames_budget")
print(
    json.dumps(
        {
            "version": metadata.version("mlx-vlm"),
            "channels_last": mlx_vlm.video_takes_channels_last(mlx_vlm.load_processor_module()),
            "grid": grid.tolist(),
            "ref_grid": ref_grid.tolist(),
            "max_diff": float(np.abs(values - ref_values).max()),
        }
    )
)
