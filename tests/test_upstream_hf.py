"""HF transformers as an oracle for the reference (SPEC-NOTES §8): every stage HF exposes, HF's own modules in
float64 with random weights from vitspec.reference.weights.random_weights, run unchanged (no monkeypatch).

HF computes RMSNorm statistics, the rotary cos/sin and their application in float32 whatever the model dtype, so
the stages that go through those steps are compared at the measured bound tolerance.HF_FLOAT64 (the float32 row
of the table); the others (index stages exactly, patch_embed and mlp) at float64. One test shows the islands are
real: the float64 tower does not pass the float64 tolerance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

from vitspec.reference import (
    attention as ref_attention,
    block as ref_block,
    embed as ref_embed,
    merger as ref_merger,
    rope as ref_rope,
    tower as ref_tower,
    windows as ref_windows,
)
from vitspec.reference.weights import random_weights
from vitspec.spec.configs import small_config
from vitspec.spec.protocol import subdict
from vitspec.tests import strategies as S, tolerance
from vitspec.tests.checks import assert_close, assert_index_equal

pytestmark = pytest.mark.conformance(oracle="HF transformers")
CONFIG = small_config(depth=3, fullatt_block_indexes=(1,))
EPS = 1e-6
ISLANDS = tolerance.HF_FLOAT64  # the dtype whose tolerance HF's float64 modules meet (float32 islands)


@pytest.fixture(scope="session")
def hf():
    """HF's float64 target, or a skip when transformers (with Qwen2.5-VL) is not installed."""
    try:
        from vitspec.adapters import hf as hf_target
    except ImportError as e:
        pytest.skip(f"UPSTREAM ORACLE MISSING: {e}")
    return hf_target.hf_target("float64")


def block_problem(config, seed, grid_thw, window: bool):
    """x, block weights, segments and window-ordered (cos, sin) for one block of `config` on `grid_thw`."""
    m = config["spatial_merge_size"]
    index, cu_window = ref_windows.window_index(grid_thw)
    head_dim = config["hidden_size"] // config["num_heads"]
    rotary = tuple(
        ref_windows.permute_groups(a, index, m * m)
        for a in ref_rope.rotary_cos_sin(ref_rope.rotary_position_ids(grid_thw), head_dim)
    )
    x = S.normal(seed, (S.num_patches(grid_thw), config["hidden_size"]))
    params = subdict(random_weights(config, seed), "blocks.0")
    return x, params, cu_window if window else ref_windows.cu_seqlens(grid_thw), rotary


def K_segments(config, cu) -> int:
    return int(max(config["hidden_size"], config["intermediate_size"], np.max(np.diff(cu))))


@pytest.mark.stage("rotary_position_ids")
@given(S.grid_lists(max_cells=20, max_t=4, max_patches=3000))
def test_hf_position_ids_equal_reference(hf, grid_thw):
    assert_index_equal(
        "rotary_position_ids",
        hf.rotary_position_ids(np.array(grid_thw)),
        ref_rope.rotary_position_ids(grid_thw),
        grid_thw=grid_thw,
        oracle="hf",
    )


@pytest.mark.stage("cu_seqlens")
@given(S.grid_lists(max_cells=20, max_t=4, max_patches=3000))
def test_hf_cu_seqlens_equal_reference(hf, grid_thw):
    assert_index_equal(
        "cu_seqlens",
        hf.cu_seqlens(np.array(grid_thw)),
        ref_windows.cu_seqlens(grid_thw),
        grid_thw=grid_thw,
        oracle="hf",
    )


@pytest.mark.stage("window_index")
@given(S.grid_lists(max_cells=20, max_t=4, max_patches=3000))
@example([(1, 16, 16)])  # HF's padding formula adds empty windows here; unique_consecutive drops them
@example([(1, 24, 24)])
def test_hf_window_index_equals_reference(hf, grid_thw):
    index, cu = hf.window_index(np.array(grid_thw))
    ref_index, ref_cu = ref_windows.window_index(grid_thw)
    assert_index_equal("window_index", index, ref_index, grid_thw=grid_thw, oracle="hf")
    assert_index_equal("window_index", cu, ref_cu, grid_thw=grid_thw, oracle="hf", output="cu_window_seqlens")


@pytest.mark.stage("patch_embed")
@given(st.integers(1, 32), S.seeds)
def test_hf_patch_embed_equals_reference(hf, rows, seed):
    x, w = S.pixel_values(seed, [(1, 1, rows)]), S.normal(seed, (32, 3, 2, 14, 14), 1 / np.sqrt(1176))
    assert_close(
        "patch_embed",
        hf.patch_embed(x, w),
        ref_embed.patch_embed(x, w),
        K=1176,
        magnitude=tolerance.terms(x, w.reshape(32, -1)),
        dtype="float64",
        rows=rows,
        seed=seed,
        oracle="hf",
    )


@pytest.mark.stage("rotary_cos_sin")
@given(S.grid_lists(max_patches=800), st.sampled_from([8, 16, 80]), S.seeds)
def test_hf_rope_equals_reference(hf, grid_thw, head_dim, seed):
    pos = ref_rope.rotary_position_ids(grid_thw)
    cos, sin = hf.rotary_cos_sin(pos, head_dim)
    ref_cos, ref_sin = ref_rope.rotary_cos_sin(pos, head_dim)
    mag = tolerance.angle(pos, head_dim, ISLANDS)
    assert_close("rotary_cos_sin", cos, ref_cos, K=1, magnitude=mag, dtype=ISLANDS, grid_thw=grid_thw, oracle="hf")
    assert_close("rotary_cos_sin", sin, ref_sin, K=1, magnitude=mag, dtype=ISLANDS, grid_thw=grid_thw, oracle="hf")
    x = S.normal(seed, (len(pos), 2, head_dim))
    assert_close(
        "apply_rotary",
        hf.apply_rotary(x, (ref_cos, ref_sin)),
        ref_rope.apply_rotary(x, (ref_cos, ref_sin)),
        K=2,
        magnitude=tolerance.pair(x),
        dtype=ISLANDS,
        grid_thw=grid_thw,
        seed=seed,
        oracle="hf",
    )


@pytest.mark.stage("attention_module")
@given(S.configs(max_depth=2), S.grid_lists(max_images=2, max_cells=10, max_patches=500), st.booleans(), S.seeds)
def test_hf_attention_module_equals_reference(hf, config, grid_thw, window, seed):
    x, params, cu, rotary = block_problem(config, seed, grid_thw, window)
    attn = subdict(params, "attn")
    ref = ref_attention.attention_module(x, attn, cu, rotary, config["num_heads"])
    assert_close(
        "attention_module",
        hf.attention_module(x, attn, cu, rotary, config["num_heads"]),
        ref,
        K=K_segments(config, cu),
        magnitude=tolerance.row_rms(ref),
        dtype=ISLANDS,
        grid_thw=grid_thw,
        seed=seed,
        oracle="hf",
    )


@pytest.mark.stage("rms_norm")
@given(st.integers(1, 20), st.sampled_from([32, 64]), S.seeds, S.scales)
def test_hf_rms_norm_and_mlp_equal_reference(hf, rows, hidden, seed, scale):
    config = small_config(hidden_size=hidden)
    x = S.normal(seed, (rows, hidden), scale)
    weights = random_weights(config, seed)
    w, mlp = weights["blocks.0.norm1.weight"], subdict(weights, "blocks.0.mlp")
    ref = ref_block.rms_norm(x, w, EPS)
    assert_close(
        "rms_norm",
        hf.rms_norm(x, w, EPS),
        ref,
        K=hidden,
        magnitude=np.abs(ref),
        dtype=ISLANDS,
        seed=seed,
        scale=scale,
        oracle="hf",
    )
    ref = ref_block.mlp(x, mlp)
    assert_close(
        "mlp",
        hf.mlp(x, mlp),
        ref,
        K=max(hidden, config["intermediate_size"]),
        magnitude=tolerance.row_rms(ref),
        dtype="float64",
        seed=seed,
        scale=scale,
        oracle="hf",
    )


@pytest.mark.stage("vision_block")
@given(S.configs(max_depth=2), S.grid_lists(max_images=2, max_cells=10, max_patches=500), st.booleans(), S.seeds)
@example(CONFIG, [(1, 20, 12)], True, 0)
def test_hf_block_equals_reference(hf, config, grid_thw, window, seed):
    x, params, cu, rotary = block_problem(config, seed, grid_thw, window)
    ref = ref_block.vision_block(x, params, cu, rotary, config["num_heads"], EPS)
    assert_close(
        "vision_block",
        hf.vision_block(x, params, cu, rotary, config["num_heads"], EPS),
        ref,
        K=K_segments(config, cu),
        magnitude=tolerance.row_rms(ref),
        dtype=ISLANDS,
        grid_thw=grid_thw,
        seed=seed,
        oracle="hf",
    )


@pytest.mark.stage("merger")
@given(S.configs(max_depth=2), st.integers(1, 20), S.seeds)
def test_hf_merger_equals_reference(hf, config, cells, seed):
    x, params = S.normal(seed, (4 * cells, config["hidden_size"])), subdict(random_weights(config, seed), "merger")
    ref = ref_merger.merger(x, params, 2, EPS)
    assert_close(
        "merger",
        hf.merger(x, params, 2, EPS),
        ref,
        K=4 * x.shape[1],
        magnitude=tolerance.row_rms(ref),
        dtype=ISLANDS,
        seed=seed,
        oracle="hf",
    )


def K_tower(config, grid_thw) -> int:
    longest = max(h * w for _, h, w in grid_thw)
    return config["depth"] * max(1176, 4 * config["hidden_size"], config["intermediate_size"], longest)


@pytest.mark.stage("vision_tower")
@S.heavy(0.3)
@given(S.configs(max_depth=4), S.grid_lists(max_images=3, max_cells=12, max_patches=700), S.seeds)
@example(CONFIG, [(1, 20, 12)], 0)
@example(CONFIG, [(1, 12, 18), (2, 4, 6)], 0)
@example(CONFIG, [(3, 10, 22)], 0)
@example(CONFIG, [(1, 24, 24)], 1)
def test_hf_tower_equals_reference(hf, config, grid_thw, seed):
    weights, px, g = random_weights(config, seed), S.pixel_values(seed, grid_thw), np.array(grid_thw)
    ref = ref_tower.vision_tower(px, g, weights, config)
    assert_close(
        "vision_tower",
        hf.vision_tower(px, g, weights, config),
        ref,
        K=K_tower(config, grid_thw),
        magnitude=tolerance.row_rms(ref),
        dtype=ISLANDS,
        grid_thw=grid_thw,
        seed=seed,
        oracle="hf",
    )


@pytest.mark.stage("vision_tower")
def test_hf_float64_islands_are_real(hf):
    """HF's float64 tower carries float32 rounding (about 1e-7): it passes the HF_FLOAT64 bound, not float64's."""
    grid, weights = np.array([[1, 20, 12]]), random_weights(CONFIG, 0)
    px = S.pixel_values(0, grid)
    out, ref = hf.vision_tower(px, grid, weights, CONFIG), ref_tower.vision_tower(px, grid, weights, CONFIG)
    K = K_tower(CONFIG, [(1, 20, 12)])
    assert_close("vision_tower", out, ref, K=K, magnitude=tolerance.row_rms(ref), dtype=ISLANDS, oracle="hf")
    with pytest.raises(AssertionError, match="exceeds the tolerance"):
        assert_close("vision_tower", out, ref, K=K, magnitude=tolerance.row_rms(ref), dtype="float64", oracle="hf")
