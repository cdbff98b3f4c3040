"""Patch embedding (SPEC-NOTES §3): Conv3d(C -> D, kernel = stride = (T, P, P), no bias) on each row."""
from __future__ import annotations

import numpy as np

from vitspec.spec.validate import require_float, require_ndim


def _check(pixel_values, weight):
    require_ndim("pixel_values", pixel_values, 2, "(num_patches, channels*temporal*patch*patch)")
    require_ndim("weight", weight, 5, "(hidden, channels, temporal, patch, patch)")
    require_float("weight", weight)
    pixel_values = np.asarray(pixel_values, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    D, C, T, P, P2 = weight.shape
    if P != P2:
        raise ValueError(f"weight must have a square patch kernel, got shape {weight.shape}")
    if pixel_values.shape[1] != C * T * P * P:
        raise ValueError(f"pixel_values rows must hold channels*temporal*patch*patch = {C * T * P * P} values "
                         f"for weight shape {weight.shape}, got {pixel_values.shape[1]}")
    return pixel_values, weight


def patch_embed_conv(pixel_values, weight):
    """The Conv3d as an explicit contraction: each row viewed as (C, T, P, P), one output per kernel position.

    With kernel = stride the convolution visits each row's (T, P, P) volume exactly once, so
    out[n, d] = sum_{c,t,y,x} patch[n, c, t, y, x] * W[d, c, t, y, x].
    """
    pixel_values, weight = _check(pixel_values, weight)
    D, C, T, P, _ = weight.shape
    patches = pixel_values.reshape(-1, C, T, P, P)
    out = np.zeros((patches.shape[0], D))
    for c in range(C):
        for t in range(T):
            out += np.einsum("nyx,dyx->nd", patches[:, c, t], weight[:, c, t])
    return out


def patch_embed(pixel_values, weight):
    """Patch embedding as one matmul: pixel_values @ W.reshape(D, C*T*P*P).T (identical to the Conv3d)."""
    pixel_values, weight = _check(pixel_values, weight)
    return pixel_values @ weight.reshape(weight.shape[0], -1).T
