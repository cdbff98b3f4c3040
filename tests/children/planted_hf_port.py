"""A planted port for tests/test_adapter_hf.py::test_planted_bug_in_hf_is_caught (a negative control): HF's own
rotate_half, in HF's module as a bad release would ship it, swapped at import for one that pairs adjacent elements
(a real RoPE bug class). apply_rotary must fail; the stages that do not use rotate_half must still pass."""

import torch

from vitspec.adapters import hf
from vitspec.adapters.hf_loading import modeling


def adjacent_pairs(x):
    return torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).reshape(x.shape)


modeling.rotate_half = adjacent_pairs
TARGET = hf.TARGET
