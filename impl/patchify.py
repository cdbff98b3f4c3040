"""Flatten frames to pixel_values (SPEC-NOTES §1.3) with one reshape + permute, and its inverse."""

from __future__ import annotations

import numpy as np
import torch

from vitspec.spec.validate import (
    grid_rows,
    patch_geometry,
    positive_int,
    require_finite,
    require_frames_fit,
    require_ndim,
)

# Frame axes (t, T, C, bh, mh, P, bw, mw, P) -> row axes (t, bh, bw, mh, mw) and column axes (C, T, P, P).
TO_ROWS = (0, 3, 6, 4, 7, 2, 1, 5, 8)
FROM_ROWS = tuple(int(i) for i in np.argsort(TO_ROWS))


def as_tensor(name: str, x) -> torch.Tensor:
    """A torch tensor or NumPy array as a torch tensor (NumPy memory is shared, not copied)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise TypeError(f"{name} must be a NumPy array or torch tensor, got {type(x).__name__}")


def patch_blocks(frames, patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2):
    """Frames (F, C, H, W) as a view with axes (t, bh, bw, mh, mw, C, T, P, P), and grid_thw int64 (3,)."""
    P, T, m = patch_geometry(patch_size, temporal_patch_size, merge_size)
    require_ndim("frames", frames, 4, "(frames, channels, height, width)")
    x = as_tensor("frames", frames)
    F, C, H, W = x.shape
    require_frames_fit(F, H, W, P, T, m)
    gt, gh, gw = F // T, H // P, W // P
    blocks = x.reshape(gt, T, C, gh // m, m, P, gw // m, m, P).permute(TO_ROWS)
    return blocks, torch.tensor([gt, gh, gw], dtype=torch.int64)


def patchify(frames, patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2):
    """Frames (F, C, H, W) -> (pixel_values (N, C*T*P*P) in merge-block row order, grid_thw int64 (3,))."""
    blocks, grid = patch_blocks(frames, patch_size, temporal_patch_size, merge_size)
    x = as_tensor("frames", frames)
    if x.is_floating_point():
        require_finite("frames", bool(torch.isfinite(x).all()))
    return blocks.reshape(int(grid.prod()), -1), grid


def unpatchify(
    pixel_values, grid_thw, channels: int = 3, patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2
):
    """Inverse of patchify for one grid row: pixel_values (N, C*T*P*P) -> frames (t*T, C, h*P, w*P)."""
    P, T, m = patch_geometry(patch_size, temporal_patch_size, merge_size)
    C = positive_int("channels", channels)
    ((gt, gh, gw),) = grid_rows(grid_thw, m)
    require_ndim("pixel_values", pixel_values, 2, "(num_patches, channels*temporal*patch*patch)")
    x = as_tensor("pixel_values", pixel_values)
    if tuple(x.shape) != (gt * gh * gw, C * T * P * P):
        raise ValueError(
            f"pixel_values must have shape {(gt * gh * gw, C * T * P * P)} for grid_thw "
            f"{[gt, gh, gw]}, got {tuple(x.shape)}"
        )
    blocks = x.reshape(gt, gh // m, gw // m, m, m, C, T, P, P).permute(FROM_ROWS)
    return blocks.reshape(gt * T, C, gh * P, gw * P)
