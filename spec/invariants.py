"""The invariant catalogue: each property the suite checks, with its stage and the tests that check it.

``tests`` names the test functions ("file::function") that check the invariant and ``negative`` those that
plant a bug and show the same check rejects it. Both are read from the suite itself: a check function
whose docstring begins with invariant ids ("WIN-PERM, WIN-TILES: ...") checks those invariants, and every
test that calls it (or names an id in its own docstring) is listed; tests marked ``negative_control`` go to
``negative``; vitspec/invariant_scan.py reads them. tests/test_invariants_catalogue.py fails when an invariant has no test or no negative control.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Invariant:
    id: str
    stage: str
    statement: str
    tests: tuple[str, ...] = field(default=())
    negative: tuple[str, ...] = field(default=())


INVARIANTS: tuple[Invariant, ...] = (
    Invariant("RESIZE-MULTIPLE", "smart_resize", "Both outputs are multiples of 28 and at least 28 (HF variant)."),
    Invariant(
        "RESIZE-BUDGET",
        "smart_resize",
        "h'·w' lies within [min_pixels, max_pixels] except where the clamp to 28 forces more.",
    ),
    Invariant("RESIZE-RATIO", "smart_resize", "Aspect ratio > 200 raises ValueError; exactly 200 passes."),
    Invariant("RESIZE-IDEMPOTENT", "smart_resize", "smart_resize of a smart_resize output returns it unchanged."),
    Invariant("RESIZE-TIES", "smart_resize", "Rounding to multiples of 28 ties to even (70 -> 56, 98 -> 112)."),
    Invariant("PIXELS-PILLOW", "resize", "The bicubic resize equals Pillow's Image.resize(BICUBIC) bit for bit."),
    Invariant(
        "PIXELS-TEMPORAL",
        "preprocess",
        "A still image becomes 2 identical frames; a video is padded to a multiple of 2 with its last frame.",
    ),
    Invariant(
        "LAYOUT-ROWS", "patchify", "Rows 4k..4k+3 are one 2×2 merge block (TL, TR, BL, BR); blocks in raster order."
    ),
    Invariant("LAYOUT-COLUMNS", "patchify", "Columns are ordered (channel, time, row, column)."),
    Invariant("LAYOUT-INVERSE", "patchify", "unpatchify(patchify(frames)) == frames."),
    Invariant(
        "LAYOUT-DOCUMENT",
        "patchify",
        "The document's 588-value (P, P, C) row equals the model's per-frame (C, P, P) row after the stated permutation.",
    ),
    Invariant("CONV-PATCH", "patch_embed", "conv2d with kernel = stride = p equals patchify followed by a projection."),
    Invariant("CONV3D-MATMUL", "patch_embed", "The Conv3d patch embedding equals one matmul on the rows."),
    Invariant(
        "CONV-STILL", "patch_embed", "For a still image the Conv3d equals a 2-D conv with the temporally summed kernel."
    ),
    Invariant("ROPE-NORM", "apply_rotary", "RoPE preserves the norm of every rotation pair."),
    Invariant("ROPE-RELATIVE", "apply_rotary", "q·k after RoPE depends only on the (row, col) offset."),
    Invariant("ROPE-ZERO", "apply_rotary", "Position (0, 0) rotates nothing."),
    Invariant("ROPE-ORDER", "rotary_position_ids", "Positions follow the pixel rows' merge-block order."),
    Invariant("ROPE-FRAMES", "rotary_position_ids", "Every frame of a video has the same positions (tiled)."),
    Invariant("WIN-PERM", "window_index", "window_index is a permutation of the merged cells."),
    Invariant(
        "WIN-TILES",
        "window_index",
        "Windows are contiguous 4×4-cell tiles of the merged grid, partial only at the right and bottom.",
    ),
    Invariant("WIN-SIZES", "window_index", "Window sizes lie in (0, 64] patches and are multiples of 4."),
    Invariant("WIN-COUNT", "window_index", "The number of windows is Σ t·ceil(h/8)·ceil(w/8)."),
    Invariant(
        "WIN-MASK",
        "attention",
        "Window attention equals full attention under the block-diagonal mask of cu_window_seqlens.",
    ),
    Invariant(
        "WIN-SMALL", "attention", "A grid within one window (≤ 8×8 patches) gives window attention = full attention."
    ),
    Invariant(
        "WIN-INVERSE",
        "vision_tower",
        "The tower puts its window-order output back in raster order with the inverse of window_index.",
    ),
    Invariant("SEG-FRAMES", "cu_seqlens", "Full-attention segments are one per (image, frame)."),
    Invariant(
        "ROPE-FAR",
        "vision_tower",
        "RoPE angles carry float32 error at every position the pixel budget allows (columns up to 399 checked), "
        "whatever the model dtype.",
    ),
    Invariant(
        "RMSNORM-STATS",
        "rms_norm",
        "RMSNorm statistics (mean of squares, rsqrt) are float32 or wider: no row carries a common scale error "
        "beyond the same-dtype baseline's.",
    ),
    Invariant("MERGE-LOCAL", "merger", "Each output token depends exactly on the 4 patches of its 2×2 block."),
    Invariant("ISOLATION", "vision_tower", "Perturbing one image or frame leaves every other output unchanged."),
    Invariant("BATCH", "vision_tower", "A batch equals its images run separately."),
    Invariant("TOKENS-COUNT", "num_image_tokens", "Merged tokens = t·h·w/4 per image = vision output rows."),
    Invariant("TOKENS-PROMPT", "num_image_tokens", "The prompt check rejects a count mismatch with a clear error."),
)


def by_id(invariant_id: str) -> Invariant:
    """The catalogue entry with this id."""
    for inv in INVARIANTS:
        if inv.id == invariant_id:
            return inv
    raise ValueError(f"invariant id must be one of {[i.id for i in INVARIANTS]}, got {invariant_id!r}")
