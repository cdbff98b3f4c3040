"""Segment attention (SPEC-NOTES §3): against the reference under the tolerance model, window attention equal to
dense attention under the block-diagonal mask (WIN-MASK), and segments isolated from each other, each invariant
with a negative control."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

from vitspec.reference import attention as ref_attention, rope as ref_rope, windows as ref_windows
from vitspec.reference.weights import random_weights
from vitspec.spec.configs import small_config
from vitspec.spec.protocol import subdict
from vitspec.tests import baseline, strategies as S, tolerance
from vitspec.tests.checks import assert_close, assert_unchanged, fail, target_dtype, to_numpy
from vitspec.tests.problems import K_attention
from vitspec.tests.rotary_inputs import as_form, grid_angles, rotary_for


@pytest.mark.stage("attention")
@given(S.attention_problems())
@example(dict(cu_seqlens=np.array([0, 64, 96, 160, 192, 224, 240]), heads=2, head_dim=80, seed=1, sharpness=2.0))
def test_attention_matches_reference(stage, target, problem):
    q, k, v, cu = S.make_qkv(problem)
    ctx = problem
    dtype = target_dtype(target)
    assert_close(
        "attention",
        stage("attention")(q, k, v, cu),
        ref_attention.attention(q, k, v, cu),
        K=K_attention(q, cu),
        magnitude=tolerance.attention_scale(q, k, v, cu),
        dtype=dtype,
        baseline=lambda: baseline.attention(q, k, v, cu, dtype),
        **ctx,
    )


def masked_dense_attention(q, k, v, cu):
    """Attention over the whole sequence at once, with -inf outside the block-diagonal mask of cu."""
    segment = np.repeat(np.arange(len(cu) - 1), np.diff(cu))
    allowed = segment[:, None] == segment[None, :]
    scores = np.einsum("nhd,mhd->hnm", q, k) / np.sqrt(q.shape[-1])
    scores = np.where(allowed[None], scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("hnm,mhd->nhd", p, v)


def check_window_attention_is_masked_attention(attention, q, k, v, cu, dtype, ctx) -> None:
    """WIN-MASK: attention(q, k, v, cu_window_seqlens) equals dense attention under cu's block-diagonal mask,
    within the tolerance model (tests/tolerance.py, row "attention"): c in float32, and in bfloat16 / float16 a
    factor of the same-dtype baseline's error (segment attention in torch at that dtype, float32 softmax)."""
    got = to_numpy(attention(q, k, v, cu))
    dense = masked_dense_attention(q, k, v, cu)
    K, magnitude = K_attention(q, cu), tolerance.attention_scale(q, k, v, cu)
    norm = tolerance.normalized_error(got, dense, K, magnitude, dtype)
    base_err = None
    if dtype in tolerance.LOW_PRECISION:
        base_err = float(
            np.max(tolerance.normalized_error(baseline.attention(q, k, v, cu, dtype), dense, K, magnitude, dtype))
        )
    limit = tolerance.allowed("attention", dtype, K, base_err)
    if not np.max(norm) <= limit:
        rule = (
            "c"
            if base_err is None
            else f"{tolerance.TABLE['attention'].factor} x max(baseline {base_err:.3g}, 1/sqrt(K))"
        )
        fail(
            "attention",
            f"window attention differs from masked dense attention ({np.max(norm):.3g} x "
            f"eps*sqrt(K)*magnitude, allowed {limit:.3g} = {rule})",
            ctx,
        )


@pytest.mark.stage("attention")
@given(S.window_attention_problems())
def test_window_attention_is_masked_dense_attention(stage, target, problem):
    q, k, v, cu = S.make_qkv(problem)
    check_window_attention_is_masked_attention(stage("attention"), q, k, v, cu, target_dtype(target), problem)


# Planted bugs: each takes the attention kernel it wraps (the float64 reference by default, or the same-dtype
# baseline in torch for a planted target that computes in bfloat16 / float16 / float32).


def no_mask(q, k, v, cu, attention=ref_attention.attention):
    return attention(q, k, v, np.array([0, q.shape[0]]))


def off_by_one_segments(q, k, v, cu, attention=ref_attention.attention):
    cu = np.asarray(cu).copy()
    cu[1:-1] += 1
    return attention(q, k, v, cu)


def missing_scale(q, k, v, cu, attention=ref_attention.attention):
    return attention(q * np.sqrt(q.shape[-1]), k, v, cu)


def correct(q, k, v, cu, attention=ref_attention.attention):
    return attention(q, k, v, cu)


PLANTED = [no_mask, off_by_one_segments, missing_scale]
DTYPES = ["float32", "bfloat16", "float16"]


def at_dtype(planted, dtype: str):
    """The planted attention computed as a target in `dtype` would: inputs rounded, torch kernels at that dtype."""

    def attention(q, k, v, cu):
        return planted(q, k, v, cu, attention=lambda *a: baseline.attention(*a, dtype))

    attention.__name__ = f"{planted.__name__}_{dtype}"
    return attention


def fixed_window_problem():
    grid = [(1, 20, 12)]
    _, cu = ref_windows.window_index(grid)
    rng = S.rng(7)
    q, k, v = (rng.standard_normal((int(cu[-1]), 2, 16)) for _ in range(3))
    return q, k, v, cu


@pytest.mark.negative_control
@pytest.mark.stage("attention")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("planted", PLANTED, ids=lambda f: f.__name__)
def test_masked_attention_check_rejects(planted, dtype):
    """At each dtype the check judges: a correct target in that dtype passes, the planted bug in it fails."""
    q, k, v, cu = fixed_window_problem()
    check_window_attention_is_masked_attention(at_dtype(correct, dtype), q, k, v, cu, dtype, {})
    with pytest.raises(AssertionError, match="differs from masked dense attention"):
        check_window_attention_is_masked_attention(at_dtype(planted, dtype), q, k, v, cu, dtype, {})


def check_segments_isolated(attention, q, k, v, cu, segment: int, dtype: str, ctx) -> None:
    """Perturbing q, k, v of one segment leaves the outputs of every other segment unchanged."""
    a, b = int(cu[segment]), int(cu[segment + 1])
    before = to_numpy(attention(q, k, v, cu))
    q2, k2, v2 = (x.copy() for x in (q, k, v))
    for x in (q2, k2, v2):
        x[a:b] = -3.0 * x[a:b] + 1.0
    after = to_numpy(attention(q2, k2, v2, cu))
    keep = np.ones(q.shape[0], dtype=bool)
    keep[a:b] = False
    assert_unchanged(
        "attention",
        after,
        before,
        keep,
        K=K_attention(q, cu),
        magnitude=tolerance.attention_scale(q, k, v, cu),
        dtype=dtype,
        what=f"perturbing segment {segment} moved another segment",
        **ctx,
    )


@pytest.mark.stage("attention")
@given(S.attention_problems(), st.data())
def test_segments_are_isolated(stage, target, problem, data):
    q, k, v, cu = S.make_qkv(problem)
    segment = data.draw(st.integers(0, len(cu) - 2), label="segment")
    check_segments_isolated(stage("attention"), q, k, v, cu, segment, target_dtype(target), problem)


@pytest.mark.negative_control
@pytest.mark.stage("attention")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("planted", [no_mask, off_by_one_segments], ids=lambda f: f.__name__)
def test_isolation_check_rejects(planted, dtype):
    q, k, v, cu = fixed_window_problem()
    check_segments_isolated(at_dtype(correct, dtype), q, k, v, cu, 1, dtype, {})
    with pytest.raises(AssertionError, match="moved another segment"):
        check_segments_isolated(at_dtype(planted, dtype), q, k, v, cu, 1, dtype, {})


# --- attention_module: qkv -> RoPE -> segment attention -> proj (HF's Qwen2_5_VLVisionAttention) ---------------


def module_problem(config, seed: int, grid_thw, window: bool):
    """x, the blocks.0.attn weights, segments and window-ordered reference angles for one module of `config`."""
    _, cu_window = ref_windows.window_index(grid_thw)
    angles = grid_angles(grid_thw, config["hidden_size"] // config["num_heads"])
    x = S.normal(seed, (S.num_patches(grid_thw), config["hidden_size"]))
    params = subdict(random_weights(config, seed), "blocks.0.attn")
    return x, params, cu_window if window else ref_windows.cu_seqlens(grid_thw), angles


def K_module(x, cu) -> int:
    return int(max(x.shape[1], np.max(np.diff(cu))))


@pytest.mark.stage("attention_module")
@given(S.configs(max_depth=2), S.grid_lists(max_images=2, max_cells=10, max_patches=600), st.booleans(), S.seeds)
@example(small_config(depth=2, fullatt_block_indexes=(1,)), [(1, 20, 12)], True, 0)
@example(small_config(depth=2, fullatt_block_indexes=(1,)), [(3, 4, 6), (1, 2, 8)], False, 1)
def test_attention_module_matches_reference(stage, target, config, grid_thw, window, seed):
    dtype = target_dtype(target)
    x, params, cu, angles = module_problem(config, seed, grid_thw, window)
    heads = config["num_heads"]
    ref = ref_attention.attention_module(x, params, cu, angles, heads)
    cos, sin = as_form(angles, "cos_sin")
    assert_close(
        "attention_module",
        stage("attention_module")(x, params, cu, rotary_for(target, angles), heads),
        ref,
        K=K_module(x, cu),
        magnitude=tolerance.row_rms(ref),
        dtype=dtype,
        baseline=lambda: baseline.attention_module(x, params, cu, cos, sin, heads, dtype),
        grid_thw=grid_thw,
        window_segments=window,
        config=config,
        seed=seed,
    )


def check_module_relative(module, config, seed: int, grid_thw, shift, dtype: str) -> None:
    """ROPE-RELATIVE at the module: shifting every position by the same (row, col) offset leaves the output
    unchanged (q.k depends only on position offsets), and so does perturbing another segment (ISOLATION)."""
    x, params, cu, _ = module_problem(config, seed, grid_thw, window=True)
    heads, head_dim = config["num_heads"], config["hidden_size"] // config["num_heads"]
    index, _ = ref_windows.window_index(grid_thw)
    pos = ref_windows.permute_groups(ref_rope.rotary_position_ids(grid_thw), index, 4)
    before = to_numpy(module(x, params, cu, ref_rope.rotary_angles(pos, head_dim), heads))
    after = module(x, params, cu, ref_rope.rotary_angles(pos + np.asarray(shift), head_dim), heads)
    assert_unchanged(
        "attention_module",
        after,
        before,
        np.ones(len(x), dtype=bool),
        K=K_module(x, cu),
        magnitude=tolerance.row_rms(before),
        dtype=dtype,
        what=f"shifting every position by {list(shift)} moved the output",
        grid_thw=grid_thw,
        seed=seed,
    )
    a, b = int(cu[1]), int(cu[2]) if len(cu) > 2 else int(cu[1])
    x2 = x.copy()
    x2[a:b] = -2.0 * x2[a:b] + 0.5
    keep = np.ones(len(x), dtype=bool)
    keep[a:b] = False
    other = module(x2, params, cu, ref_rope.rotary_angles(pos, head_dim), heads)
    assert_unchanged(
        "attention_module",
        other,
        before,
        keep,
        K=K_module(x, cu),
        magnitude=tolerance.row_rms(before),
        dtype=dtype,
        what="perturbing window 1 moved another window",
        grid_thw=grid_thw,
        seed=seed,
    )


@pytest.mark.stage("attention_module")
@given(
    S.configs(max_depth=2),
    S.grid_lists(max_images=2, max_cells=10, max_patches=600),
    S.seeds,
    st.tuples(st.integers(0, 60), st.integers(0, 60)),
)
def test_attention_module_relative_positions_and_isolation(stage, target, config, grid_thw, seed, shift):
    module = stage("attention_module")
    check_module_relative(
        lambda x, p, cu, angles, h: module(x, p, cu, rotary_for(target, angles), h),
        config,
        seed,
        grid_thw,
        shift,
        target_dtype(target),
    )


def module_rotating_only_q(x, params, cu, angles, heads):
    """k left unrotated: q.k then depends on the absolute position of q."""
    x = np.asarray(x, dtype=np.float64)
    N, D = x.shape
    q, k, v = (x @ params["qkv.weight"].T + params["qkv.bias"]).reshape(N, 3, heads, D // heads).transpose(1, 0, 2, 3)
    out = ref_attention.attention(ref_rope.apply_rotary(q, angles), k, v, cu).reshape(N, D)
    return out @ params["proj.weight"].T + params["proj.bias"]


def module_without_mask(x, params, cu, angles, heads):
    return ref_attention.attention_module(x, params, np.array([0, len(x)]), angles, heads)


@pytest.mark.negative_control
@pytest.mark.stage("attention_module")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    "planted,message",
    [(module_rotating_only_q, "shifting every position"), (module_without_mask, "moved another window")],
    ids=["k_not_rotated", "no_mask"],
)
def test_module_checks_reject(planted, message, dtype):
    config, grid = small_config(depth=2, fullatt_block_indexes=(1,)), [(1, 20, 12)]
    check_module_relative(ref_attention.attention_module, config, 0, grid, (7, 3), dtype)
    with pytest.raises(AssertionError, match=message):
        check_module_relative(planted, config, 0, grid, (7, 3), dtype)


@pytest.mark.modules
@pytest.mark.stage("attention_module")
@pytest.mark.parametrize("form", ["angles", "cos_sin"])
@given(S.configs(max_depth=2), S.grid_lists(max_images=2, max_cells=8, max_patches=400), st.booleans(), S.seeds)
def test_impl_attention_module_in_both_forms(form, config, grid_thw, window, seed):
    """impl takes either rotary form (with_options(rotary=...)); both match the reference in float32."""
    from vitspec import impl

    x, params, cu, angles = module_problem(config, seed, grid_thw, window)
    heads = config["num_heads"]
    ref = ref_attention.attention_module(x, params, cu, angles, heads)
    got = impl.TARGET.with_options(dtype="float32", rotary=form).attention_module(
        x, params, cu, as_form(angles, form), heads
    )
    assert_close(
        "attention_module",
        got,
        ref,
        K=K_module(x, cu),
        magnitude=tolerance.row_rms(ref),
        dtype="float32",
        form=form,
        grid_thw=grid_thw,
        seed=seed,
    )
