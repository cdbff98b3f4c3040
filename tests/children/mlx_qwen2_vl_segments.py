"""Run in an mlx-vlm release's venv by tests/test_adapter_mlx_vlm_releases.py: that release's own Qwen2-VL vision
model on an image, a video and two images (one, two and two segments), as one JSON line of outcomes."""

import json

import mlx.core as mx

from vitspec.adapters import mlx_vlm

t = mlx_vlm.Qwen2VL()
out = {"version": t.version}
for name, grid in (("image", [[1, 4, 4]]), ("video", [[2, 4, 4]]), ("two images", [[1, 4, 4], [1, 2, 2]])):
    model = t._model(
        depth=1, hidden_size=16, num_heads=2, in_channels=3, temporal_patch_size=2, patch_size=14, spatial_merge_size=2
    )
    x = mx.random.normal((sum(a * b * c for a, b, c in grid), 3 * 2 * 14 * 14))
    try:
        mx.eval(model(x, mx.array(grid)))
        out[name] = "ok"
    except ValueError as e:
        out[name] = str(e)
print(json.dumps(out))
