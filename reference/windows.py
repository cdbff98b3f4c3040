"""Window and full-attention segments (SPEC-NOTES §3, "Windows" and "Full attention blocks").

Windows are enumerated directly: per image and per frame, the merged grid is tiled from the
top-left by square windows of window_size / patch_size / merge_size cells, visited row-major, cells
row-major inside each window; windows at the right and bottom edges are partial.

The math only: the input rules (spec/validate.py window_index_inputs, cu_seqlens_inputs) are applied by
reference.TARGET.
"""

from __future__ import annotations

import numpy as np

from vitspec.reference.patchify import thw_rows


def window_cells(window_size: int = 112, patch_size: int = 14, merge_size: int = 2) -> int:
    """Side of a window in merged cells: window_size // merge_size // patch_size (4 for 112, 2, 14)."""
    return int(window_size) // int(merge_size) // int(patch_size)


def windows(grid_thw, window_size: int = 112, patch_size: int = 14, merge_size: int = 2):
    """The list of windows; each is the list of merged-cell ids it holds (ids count cells over all images)."""
    k, merge_size = window_cells(window_size, patch_size, merge_size), int(merge_size)
    out = []
    offset = 0
    for t, h, w in thw_rows(grid_thw):
        rows, cols = h // merge_size, w // merge_size
        for frame in range(t):
            base = offset + frame * rows * cols
            for top in range(0, rows, k):
                for left in range(0, cols, k):
                    out.append(
                        [
                            base + r * cols + c
                            for r in range(top, min(top + k, rows))
                            for c in range(left, min(left + k, cols))
                        ]
                    )
        offset += t * rows * cols
    return out


def window_index(grid_thw, window_size: int = 112, patch_size: int = 14, merge_size: int = 2):
    """(window_index, cu_window_seqlens): merged-cell ids in window order, and cumulative window sizes in patches."""
    wins, merge_size = windows(grid_thw, window_size, patch_size, merge_size), int(merge_size)
    index = np.array([cell for win in wins for cell in win], dtype=np.int64)
    sizes = [len(win) * merge_size * merge_size for win in wins]  # no window is empty by construction
    cu = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return index, cu


def inverse_permutation(index):
    """inverse[index[i]] = i, so x_window[inverse] restores raster order (argsort of a permutation)."""
    index = np.asarray(index, dtype=np.int64)
    inverse = np.empty_like(index)
    inverse[index] = np.arange(index.size, dtype=np.int64)
    return inverse


def cu_seqlens(grid_thw, merge_size: int = 2):
    """Full-attention segments: one per (image, frame) of h*w patches, cumulated from 0."""
    lengths = [h * w for t, h, w in thw_rows(grid_thw) for _ in range(t)]
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def permute_groups(x, index, group: int = 4):
    """Move rows in whole groups of `group` (one merged cell): x.reshape(-1, group, ...)[index] flattened back."""
    x = np.asarray(x)
    if x.shape[0] != group * len(index):
        raise ValueError(f"x must have {group} rows per entry of index ({group * len(index)}), got {x.shape[0]}")
    return x.reshape(len(index), group, *x.shape[1:])[np.asarray(index)].reshape(x.shape)
