"""The whole vision tower (SPEC-NOTES §3): pixel_values, grid_thw -> merged tokens in raster order."""
from __future__ import annotations

from vitspec.reference.block import vision_block
from vitspec.reference.embed import patch_embed
from vitspec.reference.merger import merger
from vitspec.reference.rope import rotary_angles, rotary_position_ids
from vitspec.reference.windows import cu_seqlens, inverse_permutation, permute_groups, window_index
from vitspec.spec.configs import RMS_NORM_EPS, ROPE_THETA
from vitspec.spec.protocol import subdict
from vitspec.reference.weights import check_weights
from vitspec.spec.validate import grid_rows, non_negative_int, positive_int, require_ndim, require_rows_match_grid

CONFIG_FIELDS = ("depth", "hidden_size", "num_heads", "intermediate_size", "out_hidden_size", "patch_size",
                 "spatial_merge_size", "temporal_patch_size", "window_size", "fullatt_block_indexes", "in_channels")

def check_config(config) -> dict:
    """A vision config with HF's field names; every geometric field a positive integer, full blocks within depth."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict with HF vision-config field names, got {type(config).__name__}")
    missing = [f for f in CONFIG_FIELDS if f not in config]
    if missing:
        raise ValueError(f"config is missing fields {missing}")
    for f in CONFIG_FIELDS:
        if f != "fullatt_block_indexes":
            positive_int(f"config['{f}']", config[f])
    depth = config["depth"]
    for i in config["fullatt_block_indexes"]:
        if non_negative_int("config['fullatt_block_indexes'] entry", i) >= depth:
            raise ValueError(f"config['fullatt_block_indexes'] must lie in [0, depth={depth}), got {i}")
    if config["hidden_size"] % config["num_heads"]:
        raise ValueError(f"config['num_heads']={config['num_heads']} must divide hidden_size={config['hidden_size']}")
    return config

def vision_tower(pixel_values, grid_thw, weights, config):
    """Embed, move to window order, run the blocks (full segments at fullatt_block_indexes, windows elsewhere),
    merge 2×2 blocks, and restore raster order with the inverse of window_index."""
    cfg = check_config(config)
    m = cfg["spatial_merge_size"]
    rows = grid_rows(grid_thw, m)
    require_ndim("pixel_values", pixel_values, 2, "(num_patches, channels*temporal*patch*patch)")
    require_rows_match_grid("pixel_values", pixel_values, rows)
    check_weights(weights, cfg)
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
