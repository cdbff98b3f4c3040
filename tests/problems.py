"""Stage problems and planted stages shared by the tests and tests/measure_tolerance.py: reduction lengths K, block
and merger inputs, the tower's tolerance check and planted towers (no test file imports another)."""

from __future__ import annotations

import numpy as np

from vitspec.reference import (
    block as ref_block,
    embed as ref_embed,
    merger as ref_merger,
    rope as ref_rope,
    tower as ref_tower,
    windows as ref_windows,
)
from vitspec.reference.weights import random_weights
from vitspec.spec.protocol import subdict
from vitspec.tests import baseline, strategies as S, tolerance
from vitspec.tests.checks import assert_close
from vitspec.tests.rotary_inputs import grid_angles


def K_attention(q, cu) -> int:
    return int(max(q.shape[-1], np.max(np.diff(cu))))


def block_problem(config, seed, grid_thw, window: bool):
    """x, block weights, segments and window-ordered reference angles for one block of `config` on `grid_thw`."""
    _, cu_window = ref_windows.window_index(grid_thw)
    angles = grid_angles(grid_thw, config["hidden_size"] // config["num_heads"], config["spatial_merge_size"])
    x = S.normal(seed, (S.num_patches(grid_thw), config["hidden_size"]))
    params = subdict(random_weights(config, seed), "blocks.0")
    return x, params, cu_window if window else ref_windows.cu_seqlens(grid_thw), angles


def K_block(config, cu) -> int:
    return int(max(config["hidden_size"], config["intermediate_size"], np.max(np.diff(cu))))


def merger_problem(config, seed: int, cells: int, scale: float = 1.0):
    x = S.normal(seed, (4 * cells, config["hidden_size"]), scale)
    return x, subdict(random_weights(config, seed), "merger")


def tanh_gelu_merger(x, params, merge_size=2, eps=1e-6):
    """The merger with the tanh approximation of GELU instead of erf."""
    h = ref_block.rms_norm(x, params["ln_q.weight"], eps).reshape(-1, 4 * x.shape[1])
    h = ref_block.linear(h, params["mlp.0.weight"], params["mlp.0.bias"])
    h = 0.5 * h * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (h + 0.044715 * h**3)))
    return ref_block.linear(h, params["mlp.2.weight"], params["mlp.2.bias"])


def K_tower(config, grid_thw) -> int:
    longest = max(h * w for _, h, w in grid_thw)
    return config["depth"] * max(1176, 4 * config["hidden_size"], config["intermediate_size"], longest)


def check_tower_matches(tower, config, grid_thw, seed, dtype) -> None:
    weights, px = random_weights(config, seed), S.pixel_values(seed, grid_thw)
    g = np.array(grid_thw, dtype=np.int64)
    ref = ref_tower.vision_tower(px, g, weights, config)
    assert_close(
        "vision_tower",
        tower(px, g, weights, config),
        ref,
        K=K_tower(config, grid_thw),
        magnitude=tolerance.row_rms(ref),
        dtype=dtype,
        baseline=lambda: baseline.vision_tower(px, grid_thw, weights, config, dtype),
        grid_thw=grid_thw,
        config=config,
        seed=seed,
    )


def planted_tower(bug: str):
    """The reference tower with one bug class of SPEC-NOTES §7 planted."""

    def tower(pixel_values, grid_thw, weights, config):
        grid = [tuple(int(v) for v in row) for row in np.asarray(grid_thw)]
        heads, eps = config["num_heads"], 1e-5 if bug == "rms_eps_1e-5" else 1e-6
        x = ref_embed.patch_embed(pixel_values, weights["patch_embed.proj.weight"])
        cos, sin = ref_rope.rotary_cos_sin(ref_rope.rotary_position_ids(grid), config["hidden_size"] // heads)
        index, cu_window = ref_windows.window_index(grid)
        cu_full = ref_windows.cu_seqlens(grid)
        if bug == "per_image_full_segments":
            cu_full = np.concatenate([[0], np.cumsum([t * h * w for t, h, w in grid])])
        if bug == "batch_as_one_segment":
            cu_full = np.array([0, len(x)])
        x, cos, sin = (ref_windows.permute_groups(a, index) for a in (x, cos, sin))
        full = {str(i) if bug == "full_blocks_never_selected" else i for i in config["fullatt_block_indexes"]}
        for layer in range(config["depth"]):
            is_full = (layer in full) != (bug == "window_and_full_swapped")
            params = subdict(weights, f"blocks.{layer}")
            if bug == "attention_scale_missing":  # q scaled by sqrt(head_dim) cancels the 1/sqrt(head_dim)
                D, s = config["hidden_size"], np.sqrt(config["hidden_size"] // heads)
                params = {
                    **params,
                    "attn.qkv.weight": np.concatenate(
                        [params["attn.qkv.weight"][:D] * s, params["attn.qkv.weight"][D:]]
                    ),
                    "attn.qkv.bias": np.concatenate([params["attn.qkv.bias"][:D] * s, params["attn.qkv.bias"][D:]]),
                }
            x = ref_block.vision_block(x, params, cu_full if is_full else cu_window, (cos, sin), heads, eps)
        merger = tanh_gelu_merger if bug == "tanh_gelu" else ref_merger.merger
        merged = merger(x, subdict(weights, "merger"), 2, eps)
        return merged[index] if bug == "window_index_as_inverse" else merged[np.argsort(index)]

    tower.__name__ = bug
    return tower
