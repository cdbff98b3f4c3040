"""Patch embedding (SPEC-NOTES §3): the Conv3d with kernel = stride as one GEMM on the (N, C*T*P*P) rows."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vitspec.impl.weights import to_tensor
from vitspec.spec.validate import patch_embed_inputs


def embed_matrix(weight, dtype, device) -> torch.Tensor:
    """The Conv3d weight (D, C, T, P, P) as the (D, C*T*P*P) matrix of the equivalent Linear."""
    w = to_tensor(weight, dtype, device)
    return w.reshape(w.shape[0], -1).contiguous()


def patch_embed(pixel_values, weight, *, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """pixel_values @ W.reshape(D, C*T*P*P).T, identical to the Conv3d."""
    patch_embed_inputs(pixel_values, weight)
    return F.linear(to_tensor(pixel_values, dtype, device), embed_matrix(weight, dtype, device))
