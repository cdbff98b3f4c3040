"""Mutants of the block, merger and whole tower (SPEC-NOTES §3 and the §7 classes "Attention" and "Numerics")."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vitspec.mutants.plant import Mutant, Swap, edit

NORMS = ("rms_norm", "vision_block", "merger", "vision_tower")
MLP = ("mlp", "vision_block", "vision_tower")
MERGER = ("merger", "vision_tower")
TOWER = ("vision_tower",)
BLOCK_CHOICE = "plan.full if i in w.full_blocks else plan.window"
FULL_SEGMENTS = "full = segment_plan(frame_sizes * unit, device, (by_frame"


def half_precision_norm(norm):
    """Bug class "RMSNorm squares computed in fp16": the statistics stay in the model dtype."""
    def norm_in_dtype(x, weight, eps):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
    return norm_in_dtype


def gate_up_swapped(swiglu):
    """Bug class "fused weights split in the wrong order": silu(up) * gate instead of silu(gate) * up."""
    def swapped(gate_up):
        up, gate = gate_up.chunk(2, dim=-1)
        return F.silu(gate) * up
    return swapped


MUTANTS = (
    Mutant("rms_norm_float16_statistics", NORMS, "RMSNorm squares computed in fp16",
           "a float16 model computes mean(x^2) in float16: squares overflow above 256 and lose precision",
           (Swap("vitspec.impl.block.norm", half_precision_norm),), dtype="float16"),
    Mutant("rms_norm_bfloat16_statistics", NORMS, "RMSNorm statistics computed in bf16",
           "a bfloat16 model computes mean(x^2) and rsqrt in bfloat16 (norms in half precision, as ports have "
           "shipped): every row scaled by one wrong factor of up to ~1.5 bf16 roundings",
           (Swap("vitspec.impl.block.norm", half_precision_norm),), dtype="bfloat16"),
    Mutant("mlp_gate_up_swapped", MLP, "fused weights split in the wrong order",
           "the fused gate/up GEMM is split as (up, gate): silu(up) * gate",
           (Swap("vitspec.impl.fused.eager_swiglu", gate_up_swapped),)),
    Mutant("merger_tanh_gelu", MERGER, "tanh GELU instead of erf",
           "the merger's GELU is the tanh approximation instead of the exact erf GELU",
           (edit("vitspec.impl.merger.merger_forward", "F.gelu(F.linear(h, w.fc1_w, w.fc1_b))",
                 "F.gelu(F.linear(h, w.fc1_w, w.fc1_b), approximate=\"tanh\")"),),
           below_low_precision="tanh and erf GELU differ by at most 4.7e-4 (at x = 2.70, 1.8e-4 relative), a tenth of one bf16 "
                               "rounding: survives the bf16 and fp16 gate runs (measured), no check yet"),
    Mutant("merger_block_column_major", MERGER, "wrong merger grouping order",
           "the four patches of a 2×2 block concatenated TL, BL, TR, BR instead of TL, TR, BL, BR",
           (edit("vitspec.impl.merger.merger_forward", "norm(x, w.ln_q, eps).reshape(",
                 "norm(x, w.ln_q, eps).reshape(-1, 2, 2, x.shape[1]).transpose(1, 2).reshape("),)),
    Mutant("tower_norm_eps_1e5", TOWER, "wrong constant from the wrong config",
           "the tower's RMSNorm eps 1e-5 (a text-model value) instead of 1e-6",
           (Swap("vitspec.impl.tower.RMS_NORM_EPS", lambda _: 1e-5),),
           below_low_precision="eps moves a row of rms r by about (1e-5 - 1e-6) / (2 r^2): ~5e-6 for the tower's "
                               "rows of rms ~1, far below bf16/fp16 rounding; survives the bf16 and fp16 gate runs "
                               "(measured); a tower check on near-zero pixel rows would catch it, not written yet"),
    Mutant("tower_windows_unmasked", TOWER, "window layers with no mask",
           "window blocks attend over the whole frame (the full segments in every block)",
           (edit("vitspec.impl.tower.run_tower", BLOCK_CHOICE, "plan.full"),)),
    Mutant("tower_full_window_swapped", TOWER, "full and window metadata swapped",
           "blocks at fullatt_block_indexes use the windows and all other blocks the full segments",
           (edit("vitspec.impl.tower.run_tower", BLOCK_CHOICE, "plan.window if i in w.full_blocks else plan.full"),)),
    Mutant("tower_full_blocks_never_selected", TOWER, "full-attention blocks never selected (index type mismatch)",
           "fullatt_block_indexes kept as strings, so no block index ever matches and every block uses windows",
           (edit("vitspec.impl.tower.prepare_weights", 'frozenset(int(i) for i in config["fullatt_block_indexes"])',
                 'frozenset(str(i) for i in config["fullatt_block_indexes"])'),)),
    Mutant("tower_full_segments_per_image", TOWER, "per-image instead of per-frame full segments",
           "full-attention blocks attend over all frames of a video (one segment per image)",
           (edit("vitspec.impl.tower.tower_plan", FULL_SEGMENTS,
                 "full = segment_plan(np.array([t * h * w for t, h, w in rows]), device, (by_frame"),)),
    Mutant("tower_full_segments_span_batch", TOWER, "masks that do not isolate images",
           "full-attention blocks attend across every image and frame of the batch",
           (edit("vitspec.impl.tower.tower_plan", FULL_SEGMENTS, "full = segment_plan(frame_sizes.sum(keepdims=True) * unit, "
                                                         "device, (by_frame"),)),
    Mutant("tower_inverse_is_window_index", TOWER, "inverse permutation applied wrongly",
           "the merger output is re-ordered with the window order itself instead of its inverse",
           (Swap("vitspec.impl.tower.inverse_permutation", lambda _: lambda index: index),)),
    Mutant("tower_rope_not_permuted", TOWER, "inverse permutation applied wrongly",
           "hidden states move to window order but the RoPE angles stay in raster order",
           (edit("vitspec.impl.tower.tower_plan", "position_ids(rows, merge_size)[tokens]",
                 "position_ids(rows, merge_size)"),)),
)
