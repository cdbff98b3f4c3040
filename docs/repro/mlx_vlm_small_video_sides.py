"""mlx-vlm: the Qwen-VL video processor refuses videos with a side below 28 px that the image processor accepts.

Needs only mlx-vlm (0.5.0 or later; on Linux: pip install mlx-cpu mlx-vlm). Run:  python mlx_vlm_small_video_sides.py

What happens. `Qwen3VLVideoProcessor` (mlx_vlm/models/qwen3_vl/processing_qwen3_vl.py, which also serves Qwen2.5-VL)
sizes each video with `_smart_resize_video`, which raises ValueError when the height or the width is below
`factor` (patch_size * merge_size = 28 for Qwen2.5-VL). `_smart_resize_image`, used by `Qwen3VLImageProcessor`,
has no such check: a 20x20 image is resized up into the pixel budget (56x56), as HF's smart_resize does. HF 5.x's
video processor (transformers/models/qwen2_vl/video_processing_qwen2_vl.py, smart_resize) has no such check either,
so a short clip from a small source (a thumbnail strip, a 20-px-high banner) is processed by HF and refused by
mlx-vlm. A fix: drop the check, as the image path and HF did (the ceil branch already brings small frames up to
min_pixels, at least one factor per side).

Exit status 1 while the video processor refuses, 0 once it accepts.
"""

from __future__ import annotations

import sys

import numpy as np
from mlx_vlm.models.qwen3_vl.processing_qwen3_vl import Qwen3VLImageProcessor, Qwen3VLVideoProcessor

try:
    from importlib.metadata import version

    MLX_VLM = version("mlx-vlm")
except Exception:  # noqa: BLE001 - only for the printout
    MLX_VLM = "?"

QWEN25 = dict(patch_size=14, temporal_patch_size=2, merge_size=2, min_pixels=56 * 56, max_pixels=28 * 28 * 1280)


def main() -> int:
    print(f"mlx-vlm {MLX_VLM}")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    video = rng.integers(0, 256, (4, 20, 20, 3), dtype=np.uint8)  # 4 frames of 20x20

    out = Qwen3VLImageProcessor(**QWEN25)(images=[image.transpose(2, 0, 1)])  # (C, H, W), as its fetch_images makes
    print(f"image 20x20      -> image_grid_thw {out['image_grid_thw'].tolist()}")
    try:
        out = Qwen3VLVideoProcessor(**QWEN25)(videos=[video])
    except ValueError as e:
        print(f"video 4x20x20    -> ValueError: {e}")
        print(
            "BUG: the video processor refuses a side below 28 px that the image processor (and HF 5.x's video "
            "processor) resize into the budget"
        )
        return 1
    print(f"video 4x20x20    -> video_grid_thw {out['video_grid_thw'].tolist()}")
    print("fixed: small video sides are resized into the budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
