"""RMSNorm, MLP and the vision block (SPEC-NOTES §3): against the reference under the tolerance model; the block
isolates windows and frames and runs a batch as its images run alone, each invariant with a negative control."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, strategies as st

from vitspec.reference import block as ref_block
from vitspec.reference.weights import random_weights
from vitspec.spec.configs import small_config
from vitspec.spec.protocol import subdict
from vitspec.tests import baseline, strategies as S, tolerance
from vitspec.tests.checks import assert_close, assert_unchanged, fail, target_dtype, to_numpy
from vitspec.tests.problems import K_block, block_problem
from vitspec.tests.rotary_inputs import as_form, rotary_for

EPS = 1e-6


def rows_with_scales(seed: int, n: int, hidden: int) -> np.ndarray:
    """n rows whose magnitudes span tiny (RMSNorm eps matters), typical and large (fp16 squares overflow)."""
    rng = S.rng(seed)
    return rng.standard_normal((n, hidden)) * rng.choice([0.01, 1.0, 1.0, 30.0, 300.0], size=(n, 1))


@pytest.mark.stage("rms_norm")
@given(st.integers(1, 40), st.sampled_from([32, 64, 1280]), S.seeds)
def test_rms_norm_matches_reference(stage, target, rows, hidden, seed):
    dtype = target_dtype(target)
    x, w = rows_with_scales(seed, rows, hidden), 1.0 + 0.1 * S.normal(seed + 1, hidden)
    ref = ref_block.rms_norm(x, w, EPS)
    assert_close(
        "rms_norm",
        stage("rms_norm")(x, w, EPS),
        ref,
        K=hidden,
        magnitude=np.abs(ref),
        dtype=dtype,
        baseline=lambda: baseline.rms_norm(x, w, EPS, dtype),
        rows=rows,
        hidden=hidden,
        seed=seed,
    )


@pytest.mark.stage("mlp")
@given(S.configs(max_depth=2), st.integers(1, 40), S.seeds)
def test_mlp_matches_reference(stage, target, config, rows, seed):
    dtype = target_dtype(target)
    x = S.normal(seed, (rows, config["hidden_size"])) * S.rng(seed + 2).choice([0.01, 1.0, 10.0], size=(rows, 1))
    params = subdict(random_weights(config, seed), "blocks.0.mlp")
    ref = ref_block.mlp(x, params)
    assert_close(
        "mlp",
        stage("mlp")(x, params),
        ref,
        K=max(config["hidden_size"], config["intermediate_size"]),
        magnitude=tolerance.row_rms(ref),
        dtype=dtype,
        baseline=lambda: baseline.mlp(x, params, dtype),
        rows=rows,
        hidden=config["hidden_size"],
        seed=seed,
    )


@pytest.mark.stage("vision_block")
@given(S.configs(max_depth=2), S.grid_lists(max_images=2, max_cells=10, max_patches=600), st.booleans(), S.seeds)
@example(small_config(depth=2, fullatt_block_indexes=(1,)), [(1, 20, 12)], True, 0)
@example(small_config(depth=2, fullatt_block_indexes=(1,)), [(3, 4, 6), (1, 2, 8)], False, 1)
@example(small_config(depth=2, fullatt_block_indexes=(1,)), S.BOUNDARY_BATCHES[0], True, 2)
@example(small_config(depth=2, fullatt_block_indexes=(1,)), S.BOUNDARY_BATCHES[1], False, 3)
def test_vision_block_matches_reference(stage, target, config, grid_thw, window, seed):
    dtype = target_dtype(target)
    x, params, cu, angles = block_problem(config, seed, grid_thw, window)
    heads = config["num_heads"]
    cos, sin = as_form(angles, "cos_sin")
    ref = ref_block.vision_block(x, params, cu, angles, heads, EPS)
    assert_close(
        "vision_block",
        stage("vision_block")(x, params, cu, rotary_for(target, angles), heads, EPS),
        ref,
        K=K_block(config, cu),
        magnitude=tolerance.row_rms(ref),
        dtype=dtype,
        baseline=lambda: baseline.vision_block(x, params, cu, cos, sin, heads, EPS, dtype),
        grid_thw=grid_thw,
        window_segments=window,
        config=config,
        seed=seed,
    )


def check_block_isolation(block, config, seed, grid_thw, window: bool, segment: int, dtype: str) -> None:
    """ISOLATION: perturbing the rows of one segment (a window in a window block, a frame or an image in a full
    block) leaves every other row of the block's output unchanged."""
    x, params, cu, angles = block_problem(config, seed, grid_thw, window)
    heads = config["num_heads"]
    a, b = int(cu[segment]), int(cu[segment + 1])
    before = to_numpy(block(x, params, cu, angles, heads, EPS))
    x2 = x.copy()
    x2[a:b] = 3.0 * x2[a:b][::-1] + 0.5
    after = block(x2, params, cu, angles, heads, EPS)
    keep = np.ones(len(x), dtype=bool)
    keep[a:b] = False
    kind = "window" if window else "frame"
    assert_unchanged(
        "vision_block",
        after,
        before,
        keep,
        K=K_block(config, cu),
        magnitude=tolerance.row_rms(before),
        dtype=dtype,
        what=f"perturbing {kind} {segment} moved another {kind}",
        grid_thw=grid_thw,
        seed=seed,
    )


@pytest.mark.stage("vision_block")
@given(S.block_segments(), S.seeds)
def test_block_isolates_windows_and_frames(stage, target, problem, seed):
    config, grid, window, segment = problem
    check_block_isolation(
        in_form(stage("vision_block"), target), config, seed, grid, window, segment, target_dtype(target)
    )


def in_form(block, target):
    """The target's vision_block called with reference angles turned into the rotary form it declares."""
    return lambda x, params, cu, angles, heads, eps: block(x, params, cu, rotary_for(target, angles), heads, eps)


def block_without_mask(x, params, cu, angles, heads, eps):
    """A window block run with no mask: one segment for everything."""
    return ref_block.vision_block(x, params, np.array([0, len(x)]), angles, heads, eps)


@pytest.mark.negative_control
@pytest.mark.stage("vision_block")
@pytest.mark.parametrize("window", [True, False], ids=["window_block", "full_block"])
def test_block_isolation_check_rejects_missing_mask(window):
    config = small_config(depth=2, fullatt_block_indexes=(1,))
    grid = [(1, 20, 12)] if window else [(2, 6, 4)]
    check_block_isolation(ref_block.vision_block, config, 0, grid, window, 1, "float32")
    with pytest.raises(AssertionError, match="moved another"):
        check_block_isolation(block_without_mask, config, 0, grid, window, 1, "float32")


def check_batch_equals_separate(block, config, seed, grid_thw, dtype: str) -> None:
    """BATCH: a full-attention block on a batch equals the block on each image alone, concatenated."""
    x, params, cu, angles = block_problem(config, seed, grid_thw, window=False)
    heads = config["num_heads"]
    batch = block(x, params, cu, angles, heads, EPS)
    parts, start = [], 0
    for t, h, w in grid_thw:
        n = t * h * w
        cu_one = np.arange(t + 1, dtype=np.int64) * h * w
        parts.append(block(x[start : start + n], params, cu_one, angles[start : start + n], heads, EPS))
        start += n
    separate = np.concatenate([to_numpy(p) for p in parts])
    assert_unchanged(
        "vision_block",
        batch,
        separate,
        np.ones(len(x), dtype=bool),
        K=K_block(config, cu),
        magnitude=tolerance.row_rms(separate),
        dtype=dtype,
        what="the batch differs from its images run alone",
        grid_thw=grid_thw,
        seed=seed,
    )


@pytest.mark.stage("vision_block")
@given(S.configs(max_depth=2), S.grid_lists(max_images=3, max_cells=8, max_patches=500), S.seeds)
def test_block_batch_equals_images_alone(stage, target, config, grid_thw, seed):
    check_batch_equals_separate(in_form(stage("vision_block"), target), config, seed, grid_thw, target_dtype(target))


@pytest.mark.negative_control
@pytest.mark.stage("vision_block")
def test_batch_check_rejects_one_segment_for_the_batch():
    config = small_config(depth=2, fullatt_block_indexes=(1,))
    check_batch_equals_separate(ref_block.vision_block, config, 0, [(1, 4, 6), (2, 6, 4)], "float32")
    with pytest.raises(AssertionError, match="differs from its images"):
        check_batch_equals_separate(block_without_mask, config, 0, [(1, 4, 6), (2, 6, 4)], "float32")


@pytest.mark.negative_control
@pytest.mark.stage("rms_norm")
def test_rms_norm_tolerance_rejects_eps_1e_5():
    """The float32 tolerance catches RMSNorm with eps 1e-5 (a LayerNorm default) on rows of small magnitude."""
    x, w = rows_with_scales(3, 20, 64), 1.0 + 0.1 * S.normal(4, 64)
    ref = ref_block.rms_norm(x, w, EPS)
    assert_close("rms_norm", ref_block.rms_norm(x, w, EPS), ref, K=64, magnitude=np.abs(ref), dtype="float32")
    with pytest.raises(AssertionError, match="exceeds the tolerance"):
        assert_close("rms_norm", ref_block.rms_norm(x, w, 1e-5), ref, K=64, magnitude=np.abs(ref), dtype="float32")


@pytest.mark.modules
@pytest.mark.stage("vision_block")
@pytest.mark.parametrize("form", ["angles", "cos_sin"])
@given(S.configs(max_depth=2), S.grid_lists(max_images=2, max_cells=8, max_patches=400), st.booleans(), S.seeds)
def test_impl_vision_block_in_both_forms(form, config, grid_thw, window, seed):
    """impl takes either rotary form (with_options(rotary=...)); both match the reference in float32."""
    from vitspec import impl

    x, params, cu, angles = block_problem(config, seed, grid_thw, window)
    heads = config["num_heads"]
    ref = ref_block.vision_block(x, params, cu, angles, heads, EPS)
    got = impl.TARGET.with_options(dtype="float32", rotary=form).vision_block(
        x, params, cu, as_form(angles, form), heads, EPS
    )
    assert_close(
        "vision_block",
        got,
        ref,
        K=K_block(config, cu),
        magnitude=tolerance.row_rms(ref),
        dtype="float32",
        form=form,
        grid_thw=grid_thw,
        seed=seed,
    )


def row_scale_bias(out, ref) -> np.ndarray:
    """Per row: |least-squares scale of out against ref - 1|, the row's common relative error."""
    out, ref = to_numpy(out), np.asarray(ref, dtype=np.float64)
    return np.abs(np.sum(out * ref, axis=-1) / np.maximum(np.sum(ref * ref, axis=-1), np.finfo(float).tiny) - 1.0)


def check_rms_norm_row_scale(rms_norm, x, w, dtype: str, **context) -> None:
    """RMSNORM-STATS: the statistics (mean of squares, rsqrt) of RMSNorm are float32 or wider (SPEC-NOTES §3).
    Statistics in bf16 scale a whole row by one wrong factor (up to ~1.5 bf16 roundings): per element that is
    within the output rounding, but averaged over the row's K elements it stands out. Judged by tolerance row
    "rms_norm_row_scale": the row bias, in units of eps(dtype)/sqrt(K), at most c x sqrt(K) (float32: the float32
    statistics' own accumulation error) or factor x max(the same-dtype baseline's, 1) (bf16, fp16). Rows large
    and away from powers of two (large_rows)."""
    K = x.shape[1]
    unit = tolerance.EPS[dtype] / np.sqrt(K)
    ref = ref_block.rms_norm(x, w, EPS)
    got = float(np.max(row_scale_bias(rms_norm(x, w, EPS), ref))) / unit
    tol = tolerance.TABLE["rms_norm_row_scale"]
    base = None
    if dtype in tolerance.LOW_PRECISION:
        base = float(np.max(row_scale_bias(baseline.rms_norm(x, w, EPS, dtype), ref))) / unit
        limit = tol.factor * max(base, 1.0)
    else:  # float32 statistics are the spec: allow their own accumulation error, summed in sequence or pairwise
        limit = tol.c * K / 4
    if not got <= limit:
        fail(
            "rms_norm",
            f"the rows' common scale is off by {got:.3g} x eps/sqrt(K), allowed {limit:.3g}"
            + (f" ({tol.factor} x max(baseline {base:.3g}, 1))" if base is not None else f" (c x K / 4, c = {tol.c})")
            + ": RMSNorm statistics computed below float32?",
            {**context, "dtype": dtype},
        )


def large_rows(seed: int, rows: int, hidden: int) -> np.ndarray:
    """Rows of N(0, 1) values scaled to rms 2^k * (1.2..1.7), k = 1..8: large, and away from powers of two (at
    rms ~2^k the normalized row is the rounded input over 2^k, which rounds back onto the input's grid and biases
    every bf16 implementation by up to one rounding)."""
    generator = S.rng(seed)
    scale = 2.0 ** generator.integers(1, 9, (rows, 1)) * generator.uniform(1.2, 1.7, (rows, 1))
    return generator.standard_normal((rows, hidden)) * scale


@pytest.mark.stage("rms_norm")
@given(st.sampled_from([640, 1280]), S.seeds)
@example(1280, 0)
def test_rms_norm_statistics_row_scale(stage, target, hidden, seed):
    x, w = large_rows(seed, 64, hidden), 1.0 + 0.1 * S.normal(seed + 1, hidden)
    check_rms_norm_row_scale(stage("rms_norm"), x, w, target_dtype(target), hidden=hidden, seed=seed)


def rms_norm_statistics_in(dtype: str):
    """Planted: RMSNorm whose mean of squares and rsqrt run in the model dtype."""

    def planted(x, w, eps):
        xt, wt = baseline.cast(x, dtype), baseline.cast(w, dtype)
        return baseline.out(xt * torch.rsqrt(xt.pow(2).mean(-1, keepdim=True) + eps) * wt)

    return planted


@pytest.mark.negative_control
@pytest.mark.stage("rms_norm")
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rms_norm_statistics_check_rejects_low_precision_statistics(dtype, seed):
    x, w = large_rows(seed, 64, 1280), 1.0 + 0.1 * S.normal(seed + 1, 1280)
    check_rms_norm_row_scale(lambda *a: baseline.rms_norm(*a, dtype), x, w, dtype)
    with pytest.raises(AssertionError, match="common scale"):
        check_rms_norm_row_scale(rms_norm_statistics_in(dtype), x, w, dtype)
