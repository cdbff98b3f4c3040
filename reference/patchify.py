"""Flatten frames to pixel_values rows (SPEC-NOTES §1.3) and the document's 588-value layout (§2).

Written for obviousness: every row is built by looking up its pixels one patch at a time.
"""

from __future__ import annotations

import numpy as np

from vitspec.reference.toy import patchify2d
from vitspec.spec.validate import grid_rows, patch_geometry, positive_int, require_ndim


def thw_rows(grid_thw) -> list[tuple[int, int, int]]:
    """grid_thw (n, 3), or one row (3,), as a list of (t, h, w) Python ints (a NumPy array, torch tensor or list)."""
    values = grid_thw.tolist() if hasattr(grid_thw, "tolist") else grid_thw
    return [(int(t), int(h), int(w)) for t, h, w in np.reshape(np.asarray(values, dtype=np.int64), (-1, 3))]


def patch_row_origin(r: int, grid_h: int, grid_w: int, merge_size: int = 2) -> tuple[int, int, int]:
    """(frame group t, patch row y, patch column x) of pixel_values row r: rows are grouped by merge block.

    row = ((t*gh/m + bh)*gw/m + bw)*m*m + m*mh + mw, the patch at (m*bh + mh, m*bw + mw).
    """
    m = merge_size
    cells_per_frame = (grid_h // m) * (grid_w // m)
    block, inner = divmod(r, m * m)
    t, cell = divmod(block, cells_per_frame)
    bh, bw = divmod(cell, grid_w // m)
    mh, mw = divmod(inner, m)
    return t, bh * m + mh, bw * m + mw


def patchify(frames, patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2):
    """Frames (F, C, H, W) -> pixel_values (N, C*T*P*P) in merge-block row order and (C, T, P, P) column order.

    F must be a multiple of temporal_patch_size and H, W multiples of patch_size*merge_size (§1.3).
    Returns (pixel_values float64, grid_thw int64 [F/T, H/P, W/P]). The math only: the input rules
    (spec/validate.py patchify_inputs) are applied by reference.TARGET.
    """
    P, T, m = int(patch_size), int(temporal_patch_size), int(merge_size)
    frames = np.asarray(frames, dtype=np.float64)
    F, C, H, W = frames.shape
    gt, gh, gw = F // T, H // P, W // P
    rows = np.empty((gt * gh * gw, C * T * P * P), dtype=np.float64)
    for r in range(rows.shape[0]):
        t, y, x = patch_row_origin(r, gh, gw, m)
        # (C, T, P, P): channel, then time, then pixel row, then pixel column.
        block = frames[t * T : (t + 1) * T, :, y * P : (y + 1) * P, x * P : (x + 1) * P]  # (T, C, P, P)
        rows[r] = block.transpose(1, 0, 2, 3).reshape(-1)
    return rows, np.array([gt, gh, gw], dtype=np.int64)


def unpatchify(
    pixel_values, grid_thw, channels: int = 3, patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2
):
    """Inverse of patchify for one grid row: pixel_values (N, C*T*P*P) -> frames (t*T, C, h*P, w*P)."""
    P, T, m = patch_geometry(patch_size, temporal_patch_size, merge_size)
    C = positive_int("channels", channels)
    ((gt, gh, gw),) = grid_rows(grid_thw, m)
    require_ndim("pixel_values", pixel_values, 2, "(num_patches, channels*temporal*patch*patch)")
    pixel_values = np.asarray(pixel_values, dtype=np.float64)
    if pixel_values.shape != (gt * gh * gw, C * T * P * P):
        raise ValueError(
            f"pixel_values must have shape {(gt * gh * gw, C * T * P * P)} for grid_thw "
            f"{[gt, gh, gw]}, got {pixel_values.shape}"
        )
    frames = np.empty((gt * T, C, gh * P, gw * P), dtype=np.float64)
    for r in range(pixel_values.shape[0]):
        t, y, x = patch_row_origin(r, gh, gw, m)
        block = pixel_values[r].reshape(C, T, P, P).transpose(1, 0, 2, 3)
        frames[t * T : (t + 1) * T, :, y * P : (y + 1) * P, x * P : (x + 1) * P] = block
    return frames


def document_patches(image, patch_size: int = 14):
    """The document's layout: an (H, W, C) image -> (N, P*P*C) rows, patches in raster order,
    each row pixel-major with the channels interleaved (R1 G1 B1, R2 G2 B2, ...): 588 values for P=14.
    """
    require_ndim("image", image, 3, "(height, width, channels)")
    return patchify2d(image, patch_size)


def document_to_model_columns(patch_size: int = 14, channels: int = 3):
    """Column permutation from the document's (P, P, C) patch to the model's per-frame (C, P, P) patch.

    model_row_one_frame = document_row[perm]; this is the "stated permutation" of SPEC-NOTES §2.
    """
    P = positive_int("patch_size", patch_size)
    C = positive_int("channels", channels)
    perm = np.empty(C * P * P, dtype=np.int64)
    for c in range(C):
        for py in range(P):
            for px in range(P):
                perm[(c * P + py) * P + px] = (py * P + px) * C + c
    return perm


def still_image_kernel_as_document(weight):
    """The real Conv3d weight (D, C, T, P, P) as the 588-input projection (D, P*P*C) acting on the
    document's rows for a still image: sum the T temporal slices, then permute (C, P, P) -> (P, P, C)."""
    require_ndim("weight", weight, 5, "(hidden, channels, temporal, patch, patch)")
    weight = np.asarray(weight, dtype=np.float64)
    D, C, T, P, P2 = weight.shape
    summed = weight.sum(axis=2)  # (D, C, P, P): a still image's two frames are identical
    return summed.transpose(0, 2, 3, 1).reshape(D, P * P2 * C)
