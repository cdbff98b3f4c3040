"""2-D rotary position embedding of the vision tower (SPEC-NOTES §3, "2D RoPE")."""

from __future__ import annotations

import numpy as np

from vitspec.reference.patchify import patch_row_origin, thw_rows
from vitspec.spec.validate import rotary_head_dim


def rotary_position_ids(grid_thw, merge_size: int = 2):
    """(row, col) patch coordinate of every pixel_values row: merge-block order, tiled over the frames.

    The math only: the input rules (spec/validate.py rotary_position_ids_inputs) are applied by reference.TARGET."""
    ids, m = [], int(merge_size)
    for t, h, w in thw_rows(grid_thw):
        one_frame = [patch_row_origin(r, h, w, m)[1:] for r in range(h * w)]
        for _ in range(t):  # every frame repeats the same spatial positions (no temporal component)
            ids.extend(one_frame)
    return np.array(ids, dtype=np.int64).reshape(-1, 2)


def inv_freq(head_dim: int, theta: float = 10000.0):
    """inv_freq[i] = 1 / theta^(2i / (head_dim/2)), i < head_dim/4: 20 frequencies for head_dim 80."""
    head_dim, theta = rotary_head_dim(head_dim, theta)
    half = head_dim // 2
    return 1.0 / theta ** (np.arange(0, half, 2, dtype=np.float64) / half)


def rotary_angles(position_ids, head_dim: int, theta: float = 10000.0):
    """The head_dim/2 angles [row*inv_freq, col*inv_freq] of each token (the rotary_pos_emb table ports carry)."""
    pos = np.asarray(position_ids)
    freqs = inv_freq(head_dim, theta)
    return np.concatenate([pos[:, :1] * freqs, pos[:, 1:] * freqs], axis=1)  # (N, head_dim/2)


def rotary_cos_sin(position_ids, head_dim: int, theta: float = 10000.0):
    """cos and sin of the angles [row*inv_freq, col*inv_freq] duplicated to head_dim, per token."""
    angles_half = rotary_angles(position_ids, head_dim, theta)
    angles = np.concatenate([angles_half, angles_half], axis=1)  # (N, head_dim)
    return np.cos(angles), np.sin(angles)


def cos_sin_of(rotary):
    """cos and sin (N, head_dim) from either rotary form: angles (N, head_dim/2), or a pair (cos, sin)."""
    if isinstance(rotary, (list, tuple)):
        cos, sin = rotary
        return np.asarray(cos, dtype=np.float64), np.asarray(sin, dtype=np.float64)
    angles = np.asarray(rotary, dtype=np.float64)
    angles = np.concatenate([angles, angles], axis=1)
    return np.cos(angles), np.sin(angles)


def rotate_half(x):
    """rotate_half(x) = cat(-x[second half], x[first half]) along the last axis (NeoX pairing i <-> i + d/2)."""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rotary(x, rotary):
    """x' = x*cos + rotate_half(x)*sin, cos/sin (N, head_dim) broadcast over the heads of x (N, heads, head_dim).

    rotary: the angles (N, head_dim/2), duplicated to head_dim, or the pair (cos, sin) itself."""
    x = np.asarray(x, dtype=np.float64)
    cos, sin = cos_sin_of(rotary)
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]
