"""Window and full-attention segments (SPEC-NOTES §3, "Windows"), vectorized on the host from the grid."""

from __future__ import annotations

import numpy as np
import torch

from vitspec.spec.validate import grid_rows, window_geometry


def window_cells(window_size: int, patch_size: int, merge_size: int) -> int:
    """Side of a window in merged cells: how many merged cells (patch_size*merge_size pixels) fit in window_size."""
    window_size, patch_size, merge_size = window_geometry(window_size, patch_size, merge_size)
    return window_size // (patch_size * merge_size)


def frame_windows(rows: int, cols: int, side: int):
    """One frame's cells in window order (windows, then cells, row-major from the top-left) and window sizes."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    per_row = -(-cols // side)
    window = (r // side) * per_row + c // side
    order = np.argsort(window * side * side + (r % side) * side + c % side, kind="stable")
    return order, np.bincount(window, minlength=-(-rows // side) * per_row)


def window_layout(rows, side: int, merge_size: int):
    """(window_index, window sizes, frame of each window, frame sizes) over all images and frames, in cells."""
    index, sizes, frame_of_window, frame_sizes = [], [], [], []
    offset = 0
    for t, h, w in rows:
        cells = (h // merge_size) * (w // merge_size)
        order, win = frame_windows(h // merge_size, w // merge_size, side)
        starts = offset + cells * np.arange(t)
        index.append((starts[:, None] + order[None, :]).reshape(-1))
        sizes.append(np.tile(win, t))
        frame_of_window.append(np.repeat(len(frame_sizes) + np.arange(t), win.size))
        frame_sizes.extend([cells] * t)
        offset += t * cells
    return (
        np.concatenate(index),
        np.concatenate(sizes),
        np.concatenate(frame_of_window),
        np.array(frame_sizes, dtype=np.int64),
    )


def cumulative(lengths) -> np.ndarray:
    """[0, l0, l0+l1, ...] as int64."""
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def window_index(grid_thw, window_size: int = 112, patch_size: int = 14, merge_size: int = 2, *, device="cpu"):
    """(window_index over merged cells, cu_window_seqlens in patches), no zero-length windows."""
    side = window_cells(window_size, patch_size, merge_size)
    rows = grid_rows(grid_thw, merge_size)
    index, sizes, _, _ = window_layout(rows, side, merge_size)
    cu = cumulative(sizes * merge_size * merge_size)
    return torch.from_numpy(index).to(device), torch.from_numpy(cu).to(device)


def cu_seqlens(grid_thw, merge_size: int = 2, *, device="cpu") -> torch.Tensor:
    """One full-attention segment per image per frame of h*w patches."""
    lengths = [h * w for t, h, w in grid_rows(grid_thw, merge_size) for _ in range(t)]
    return torch.from_numpy(cumulative(lengths)).to(device)


def inverse_permutation(index: torch.Tensor) -> torch.Tensor:
    """inverse[index[i]] = i by scatter (equal to argsort of a permutation, without sorting)."""
    inverse = torch.empty_like(index)
    inverse[index] = torch.arange(index.numel(), dtype=index.dtype, device=index.device)
    return inverse
