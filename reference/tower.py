"""The whole vision tower (SPEC-NOTES §3): pixel_values, grid_thw -> merged tokens in raster order."""

from __future__ import annotations

from vitspec.reference.block import vision_block
from vitspec.reference.embed import patch_embed
from vitspec.reference.merger import merger
from vitspec.reference.patchify import thw_rows
from vitspec.reference.rope import rotary_angles, rotary_position_ids
from vitspec.reference.windows import cu_seqlens, inverse_permutation, permute_groups, window_index
from vitspec.spec.configs import RMS_NORM_EPS, ROPE_THETA
from vitspec.spec.protocol import subdict
from vitspec.spec.validate import CONFIG_FIELDS  # noqa: F401  (the config fields, for readers)


def vision_tower(pixel_values, grid_thw, weights, config):
    """Embed, move to window order, run the blocks (full segments at fullatt_block_indexes, windows elsewhere),
    merge 2×2 blocks, and restore raster order with the inverse of window_index.

    The math only: the input rules (spec/validate.py vision_tower_inputs) are applied by reference.TARGET."""
    cfg = config
    m = cfg["spatial_merge_size"]
    rows = thw_rows(grid_thw)  # grid_thw as (t, h, w) rows
    head_dim = cfg["hidden_size"] // cfg["num_heads"]

    x = patch_embed(pixel_values, weights["patch_embed.proj.weight"])
    angles = rotary_angles(rotary_position_ids(rows, m), head_dim, ROPE_THETA)
    index, cu_window = window_index(rows, cfg["window_size"], cfg["patch_size"], m)
    cu_full = cu_seqlens(rows, m)

    unit = m * m
    x, angles = (permute_groups(a, index, unit) for a in (x, angles))
    full = set(int(i) for i in cfg["fullatt_block_indexes"])
    for layer in range(cfg["depth"]):
        segments = cu_full if layer in full else cu_window
        x = vision_block(x, subdict(weights, f"blocks.{layer}"), segments, angles, cfg["num_heads"], RMS_NORM_EPS)
    merged = merger(x, subdict(weights, "merger"), m, RMS_NORM_EPS)
    return merged[inverse_permutation(index)]
