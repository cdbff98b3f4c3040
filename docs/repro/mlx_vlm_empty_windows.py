"""mlx-vlm: Qwen2.5-VL's VisionModel.__call__ never removes the zero-length windows from cu_window_seqlens.

Needs only mlx-vlm and MLX (on Linux: pip install mlx-cpu mlx-vlm). Run:  python mlx_vlm_empty_windows.py

What happens. `VisionModel.get_window_index` pads every image to whole windows with `pad = window - size % window`,
which adds one more window when the size is already a multiple of the window (HF's code does the same): for a 16×16
patch grid (224×224 pixels) cu_window_seqlens is [0, 64, 128, 128, 192, 256, 256, 256, 256, 256]. `VisionModel.__call__`
then means to keep the first occurrence of each boundary, with a `seen` set and `if x not in seen`, iterating over
the `mx.array`. Iterating an `mx.array` yields 0-d `mx.array`s, and MLX arrays hash by identity (`==` is
element-wise and returns an array), so no element is ever found in `seen`: every index is kept, and the blocks
receive the empty windows. The output is still right, because attention over an empty segment contributes nothing;
the loop is dead code that looks like it works. A fix: iterate over `cu_window_seqlens.tolist()` (Python ints), as
HF does with `torch.unique_consecutive`.

The script shows it from the outside: it wraps the first block of a one-block model to record the cu_seqlens the
block is given, and compares with what get_window_index returned. Exit status 1 while the bug is present, 0 once
fixed.
"""

from __future__ import annotations

import sys

import mlx.core as mx
from mlx_vlm.models.qwen2_5_vl import vision

try:
    from importlib.metadata import version

    MLX_VLM = version("mlx-vlm")
except Exception:  # noqa: BLE001 - only for the printout
    MLX_VLM = "?"


def main() -> int:
    print(f"mlx-vlm {MLX_VLM}, mlx {mx.__version__}")

    # 1. The cause, in two lines: a 0-d mx.array is never "in" a set holding an equal one.
    seen = {mx.array(128)}
    print(f"mx.array(128) in {{mx.array(128)}}: {mx.array(128) in seen}  (hash by identity)")

    # 2. The effect inside VisionModel.__call__: one window-attention block on a 16x16 patch grid (224x224 pixels).
    config = vision.VisionConfig(
        model_type="qwen2_5_vl",
        depth=1,
        hidden_size=32,
        num_heads=2,
        intermediate_size=64,
        out_hidden_size=32,
        fullatt_block_indexes=[],
    )
    model = vision.VisionModel(config)
    grid = mx.array([[1, 16, 16]])
    _, from_get_window_index = model.get_window_index(grid)

    received = []
    block = model.blocks[0]

    def recording_block(hidden_states, cu_seqlens, rotary_pos_emb):
        received.append(cu_seqlens.tolist())
        return block(hidden_states, cu_seqlens=cu_seqlens, rotary_pos_emb=rotary_pos_emb)

    model.blocks[0] = recording_block
    pixels = mx.random.normal((16 * 16, 3 * 2 * 14 * 14))
    mx.eval(model(pixels, grid))

    boundaries = from_get_window_index.tolist()
    given = received[0]
    deduplicated = [b for i, b in enumerate(boundaries) if i == 0 or b != boundaries[i - 1]]
    print(f"get_window_index cu_window_seqlens:      {boundaries}")
    print(f"cu_seqlens the window block receives:    {given}")
    print(f"after removing repeated boundaries:      {deduplicated}")
    if given != deduplicated:
        print(
            f"BUG: the removal loop in VisionModel.__call__ removed {len(boundaries) - len(given)} of "
            f"{len(boundaries) - len(deduplicated)} repeated boundaries (zero-length windows are passed on)"
        )
        return 1
    print("fixed: the block receives no zero-length windows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
