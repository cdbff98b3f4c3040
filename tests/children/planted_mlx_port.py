"""A planted port for tests/test_adapter_mlx_vlm.py::test_planted_bug_in_the_port_is_caught (a negative control):
the mlx-vlm port's own rotate_half swapped for one that pairs adjacent elements (a real RoPE bug class).
apply_rotary must fail; the stages that do not use rotate_half must still pass."""

import mlx.core as mx

from vitspec.adapters import mlx_vlm


def adjacent_pairs(x):
    x1, x2 = x[..., ::2], x[..., 1::2]
    return mx.stack([-x2, x1], axis=-1).reshape(x.shape)


class Planted(mlx_vlm.Qwen25VL):
    def __init__(self, dtype="float32"):
        super().__init__(dtype)
        self.vision.rotate_half = adjacent_pairs


TARGET = Planted
