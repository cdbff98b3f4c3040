"""Mutants of RoPE, windows and attention (SPEC-NOTES §3 and the §7 classes "RoPE" and "Attention")."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vitspec.mutants.plant import Mutant, Swap, edit

POSITIONS = ("rotary_position_ids", "vision_tower")
WINDOWS = ("window_index", "vision_tower")
SDPA = ("attention", "attention_module", "vision_block", "vision_tower")


def to_bfloat16(a: np.ndarray) -> np.ndarray:
    """Round float64 values to bfloat16 and back (a table stored in the model dtype)."""
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).to(torch.bfloat16).double().numpy()


def repeated_over_frames(position_ids):
    """Bug class "positions repeated instead of tiled": every position repeated t times in a row."""
    def repeated(rows, merge_size):
        return np.concatenate([np.repeat(position_ids([(1, h, w)], merge_size), t, axis=0) for t, h, w in rows])
    return repeated


def row_col_swapped(position_ids):
    """Bug class "width/height swapped": (col, row) given where (row, col) is meant."""
    def swapped(rows, merge_size):
        return np.ascontiguousarray(position_ids(rows, merge_size)[:, ::-1])
    return swapped


def rows_continue_over_images(position_ids):
    """Bug class "requests leaking into each other": each image's rows count on from the previous image's."""
    def continued(rows, merge_size):
        out, first_row = [], 0
        for t, h, w in rows:
            out.append(position_ids([(t, h, w)], merge_size) + np.array([first_row, 0]))
            first_row += h
        return np.concatenate(out)
    return continued


def inv_freq_bfloat16(inv_freq):
    """Bug class "inv_freq rounded to bf16": the frequency table kept in the model dtype."""
    def rounded(head_dim, theta=10000.0):
        return to_bfloat16(inv_freq(head_dim, theta))
    return rounded


def positions_bfloat16(half_angles):
    """Bug class "positions rounded to bf16": position ids cast to the model dtype before the angles."""
    def rounded(pos, head_dim, theta=10000.0):
        return half_angles(to_bfloat16(pos), head_dim, theta)
    return rounded


def angles_in_bfloat16(half_angles):
    """Bug class "inv_freq or positions rounded to bf16": bf16 positions times a bf16 inv_freq buffer, in bf16."""
    def rounded(pos, head_dim, theta=10000.0):
        from vitspec.impl.rope import inv_freq
        pos = torch.from_numpy(np.asarray(pos, dtype=np.float64)).to(torch.bfloat16)
        freqs = torch.from_numpy(inv_freq(head_dim, theta)).to(torch.bfloat16)
        return torch.cat([pos[:, :1] * freqs, pos[:, 1:] * freqs], dim=1).double().numpy()
    return rounded


def unscaled_sdpa(sdpa):
    """Bug class "missing attention scale": softmax(q k^T) v without 1/sqrt(head_dim)."""
    def unscaled(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, scale=1.0)
    return unscaled


def causal_sdpa(sdpa):
    """Bug class "masks that do not match the spec": the language model's causal mask in the vision tower."""
    def causal(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return causal


BF16_KEY = ("np.argsort(window * side * side + (r % side) * side + c % side, kind=\"stable\")",
            "np.argsort(torch.from_numpy(window * side * side + (r % side) * side + c % side).to(torch.bfloat16)"
            ".double().numpy(), kind=\"stable\")")

MUTANTS = (
    Mutant("rope_cos_sin_repeat_interleaved", ("rotary_cos_sin",), "repeat_interleave instead of cat of cos/sin",
           "angles duplicated element-wise [a0, a0, a1, a1, ...] instead of concatenated [a, a]: wrong rotation pairs",
           (edit("vitspec.impl.rope.rotary_cos_sin", "np.tile(half_angles(pos.astype(np.float64), head_dim, theta), 2)",
                 "np.repeat(half_angles(pos.astype(np.float64), head_dim, theta), 2, axis=1)"),)),
    Mutant("rope_pairs_adjacent", ("vision_block", "vision_tower"), "wrong rotation pairs",
           "the fused rotation pairs dims (2j, 2j+1) (GPT-J style) instead of (i, i + head_dim/2) (NeoX)",
           (Swap("vitspec.impl.rope.pair_order", lambda _: lambda head_dim: np.arange(head_dim)),)),
    Mutant("rope_rotation_reversed", ("apply_rotary", "attention_module"), "wrong rotate_half",
           "rotate_half as cat(x2, -x1): every pair is rotated by -angle",
           (edit("vitspec.impl.rope.rotate", "torch.cat((-x2, x1), dim=-1)", "torch.cat((x2, -x1), dim=-1)"),)),
    Mutant("rope_positions_repeated_over_frames", POSITIONS, "positions repeated instead of tiled over frames",
           "a video's position ids are repeat(frame, t) element-wise instead of tile(frame, t)",
           (Swap("vitspec.impl.rope.position_ids", repeated_over_frames),)),
    Mutant("rope_positions_row_col_swapped", POSITIONS, "width/height swapped",
           "position ids hold (col, row): the row frequencies rotate by column",
           (Swap("vitspec.impl.rope.position_ids", row_col_swapped),)),
    Mutant("rope_rows_continue_over_images", POSITIONS, "requests leaking into each other",
           "row positions of each image continue from the previous image's instead of starting at 0",
           (Swap("vitspec.impl.rope.position_ids", rows_continue_over_images),)),
    Mutant("rope_inv_freq_full_head_dim", ("rotary_angles", "rotary_cos_sin", "vision_tower"), "wrong rotation frequencies",
           "the 1-D formula theta^(-2i/head_dim) instead of the 2-D theta^(-2i/(head_dim/2)) per axis",
           (edit("vitspec.impl.rope.inv_freq", "2.0 * np.arange(half // 2, dtype=np.float64) / half",
                 "2.0 * np.arange(half // 2, dtype=np.float64) / head_dim"),)),
    Mutant("rope_inv_freq_bfloat16", ("rotary_angles", "rotary_cos_sin", "vision_tower"), "inv_freq rounded to bf16",
           "the 20 inverse frequencies rounded to bfloat16 (a float32 model whose buffer was cast)",
           (Swap("vitspec.impl.rope.inv_freq", inv_freq_bfloat16),)),
    Mutant("rope_positions_bfloat16", ("rotary_angles", "rotary_cos_sin", "vision_tower"), "positions rounded to bf16",
           "position ids cast to bfloat16 before the angles: rows and columns above 256 are rounded",
           (Swap("vitspec.impl.rope.half_angles", positions_bfloat16),)),
    Mutant("rope_angles_in_model_dtype", ("rotary_angles", "rotary_cos_sin", "vision_tower"),
           "inv_freq or positions rounded to bf16",
           "a bfloat16 model computes the RoPE angles in bfloat16 (its inv_freq buffer cast with the model): "
           "bf16 positions times bf16 frequencies instead of float32",
           (Swap("vitspec.impl.rope.half_angles", angles_in_bfloat16),), dtype="bfloat16"),
    Mutant("tower_rope_angles_bfloat16", ("vision_tower",), "inv_freq or positions rounded to bf16",
           "a bfloat16 tower whose rotary embedding was cast with the model (HF's model.to(bfloat16)): positions and "
           "the inv_freq buffer in bf16, their products rounded to bf16; the phase error grows with position",
           (Swap("vitspec.impl.rope.half_angles", angles_in_bfloat16),), dtype="bfloat16"),
    Mutant("window_side_5_cells", WINDOWS, "off-by-one windows",
           "windows of 5×5 merged cells (window_size // 14 // 2 + 1) instead of 4×4",
           (Swap("vitspec.impl.windows.window_cells", lambda cells: lambda *a: cells(*a) + 1),)),
    Mutant("window_per_row_floored", WINDOWS, "off-by-one windows",
           "windows per row counted as cols // 4 (floor): a partial right window spills into the next window row",
           (edit("vitspec.impl.windows.frame_windows", "per_row = -(-cols // side)", "per_row = max(1, cols // side)"),)),
    Mutant("window_per_row_from_rows", WINDOWS, "width/height swapped",
           "windows per row counted from the merged rows instead of the columns: wrong only on non-square grids",
           (edit("vitspec.impl.windows.frame_windows", "per_row = -(-cols // side)", "per_row = -(-rows // side)"),)),
    Mutant("window_cells_column_major", ("window_index",), "wrong window order",
           "cells inside a window listed column-major instead of row-major",
           (edit("vitspec.impl.windows.frame_windows", "(r % side) * side + c % side", "(c % side) * side + r % side"),)),
    Mutant("window_offset_ignores_frames", WINDOWS, "requests leaking into each other",
           "cell ids of the next image offset by one frame of a video instead of all t frames",
           (edit("vitspec.impl.windows.window_layout", "offset += t * cells", "offset += cells"),)),
    Mutant("window_sort_key_bfloat16", WINDOWS, "bf16 sort keys",
           "the window sort key rounded to bfloat16: on grids above 256 merged cells windows interleave",
           (edit("vitspec.impl.windows.frame_windows", *BF16_KEY),)),
    Mutant("cu_seqlens_per_image", ("cu_seqlens",), "per-image instead of per-frame full segments",
           "one full-attention segment per image of t·h·w patches instead of one per frame",
           (edit("vitspec.impl.windows.cu_seqlens", "[h * w for t, h, w in grid_rows(grid_thw, merge_size) for _ in range(t)]",
                 "[t * h * w for t, h, w in grid_rows(grid_thw, merge_size)]"),)),
    Mutant("cu_seqlens_whole_batch", ("cu_seqlens",), "masks that do not isolate images",
           "one full-attention segment over the whole batch",
           (edit("vitspec.impl.windows.cu_seqlens", "[h * w for t, h, w in grid_rows(grid_thw, merge_size) for _ in range(t)]",
                 "[sum(t * h * w for t, h, w in grid_rows(grid_thw, merge_size))]"),)),
    Mutant("attention_missing_scale", SDPA, "missing attention scale",
           "scores q k^T not scaled by 1/sqrt(head_dim)", (Swap("vitspec.impl.attention.sdpa", unscaled_sdpa),)),
    Mutant("attention_causal", SDPA, "wrong mask",
           "a causal mask inside every segment (the vision tower is non-causal)",
           (Swap("vitspec.impl.attention.sdpa", causal_sdpa),)),
    Mutant("attention_scatter_is_gather", SDPA, "inverse permutation applied wrongly",
           "segments regrouped by length are put back with the gather order itself instead of its inverse",
           (edit("vitspec.impl.attention.segment_plan", "scatter[gather] = torch.arange(gather.numel(), device=gather.device)",
                 "scatter = gather"),)),
    Mutant("attention_ignores_segments", ("attention",), "window layers with no mask",
           "the attention stage attends over all tokens, ignoring cu_seqlens",
           (edit("vitspec.impl.attention.attention", "segment_plan(np.diff(cu), q.device)",
                 "segment_plan(cu[-1:] - cu[:1], q.device)"),)),
)
