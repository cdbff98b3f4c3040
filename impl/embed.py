"""Patch embedding (SPEC-NOTES §3): the Conv3d with kernel = stride as one GEMM on the (N, C*T*P*P) rows."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vitspec.impl.weights import to_tensor
from vitspec.spec.validate import require_float, require_ndim, shape_of


def embed_matrix(weight, dtype, device) -> torch.Tensor:
    """The Conv3d weight (D, C, T, P, P) as the (D, C*T*P*P) matrix of the equivalent Linear."""
    w = to_tensor(weight, dtype, device)
    return w.reshape(w.shape[0], -1).contiguous()


def patch_embed(pixel_values, weight, *, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """pixel_values @ W.reshape(D, C*T*P*P).T, identical to the Conv3d."""
    require_ndim("pixel_values", pixel_values, 2, "(num_patches, channels*temporal*patch*patch)")
    require_ndim("weight", weight, 5, "(hidden, channels, temporal, patch, patch)")
    require_float("weight", weight)
    D, C, T, P, P2 = shape_of(weight)
    if P != P2:
        raise ValueError(f"weight must have a square patch kernel, got shape {shape_of(weight)}")
    if int(pixel_values.shape[1]) != C * T * P * P:
        raise ValueError(
            f"pixel_values rows must hold channels*temporal*patch*patch = {C * T * P * P} values "
            f"for weight shape {shape_of(weight)}, got {int(pixel_values.shape[1])}"
        )
    return F.linear(to_tensor(pixel_values, dtype, device), embed_matrix(weight, dtype, device))
