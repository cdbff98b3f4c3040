"""The patch merger (SPEC-NOTES §3, "Merger"): RMSNorm, 2×2 rows concatenated, Linear, erf GELU, Linear."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vitspec.impl.block import norm
from vitspec.impl.weights import to_tensor
from vitspec.spec.validate import MERGER_KEYS, check_merger_params, positive_float, positive_int, require_ndim


@dataclass(frozen=True)
class MergerWeights:
    """The merger's weights cast to the model dtype on the device."""

    ln_q: torch.Tensor
    fc1_w: torch.Tensor
    fc1_b: torch.Tensor
    fc2_w: torch.Tensor
    fc2_b: torch.Tensor


def prepare_merger(params: dict, dtype, device) -> MergerWeights:
    """The merger's weights (HF names without the merger prefix) cast to dtype on device."""
    return MergerWeights(*(to_tensor(params[k], dtype, device) for k in MERGER_KEYS))


def merger_forward(x: torch.Tensor, w: MergerWeights, unit: int, eps: float) -> torch.Tensor:
    """fc2(gelu_erf(fc1(norm(x) viewed as (N/unit, unit*D))))."""
    h = norm(x, w.ln_q, eps).reshape(x.shape[0] // unit, unit * x.shape[1])
    return F.linear(F.gelu(F.linear(h, w.fc1_w, w.fc1_b)), w.fc2_w, w.fc2_b)


def merger(x, params, merge_size: int = 2, eps: float = 1e-6, *, dtype=torch.float32, device="cpu"):
    """Each run of merge_size**2 consecutive rows (one 2×2 block) becomes one output token."""
    require_ndim("x", x, 2, "(num_patches, hidden)")
    unit = positive_int("merge_size", merge_size) ** 2
    eps = positive_float("eps", eps)
    N, D = (int(s) for s in x.shape)
    if N % unit:
        raise ValueError(f"x must have a multiple of merge_size**2 = {unit} rows, got {N}")
    check_merger_params(params, D, unit)
    return merger_forward(to_tensor(x, dtype, device), prepare_merger(params, dtype, device), unit, eps)
