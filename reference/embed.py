"""Patch embedding (SPEC-NOTES §3): Conv3d(C -> D, kernel = stride = (T, P, P), no bias) on each row.

The math only: the input rules (spec/validate.py patch_embed_inputs) are applied by reference.TARGET."""

from __future__ import annotations

import numpy as np


def patch_embed_conv(pixel_values, weight):
    """The Conv3d as an explicit contraction: each row viewed as (C, T, P, P), one output per kernel position.

    With kernel = stride the convolution visits each row's (T, P, P) volume exactly once, so
    out[n, d] = sum_{c,t,y,x} patch[n, c, t, y, x] * W[d, c, t, y, x].
    """
    pixel_values, weight = np.asarray(pixel_values, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    D, C, T, P, _ = weight.shape
    patches = pixel_values.reshape(-1, C, T, P, P)
    out = np.zeros((patches.shape[0], D))
    for c in range(C):
        for t in range(T):
            out += np.einsum("nyx,dyx->nd", patches[:, c, t], weight[:, c, t])
    return out


def patch_embed(pixel_values, weight):
    """Patch embedding as one matmul: pixel_values @ W.reshape(D, C*T*P*P).T (identical to the Conv3d)."""
    pixel_values, weight = np.asarray(pixel_values, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    return pixel_values @ weight.reshape(weight.shape[0], -1).T
