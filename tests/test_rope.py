"""2-D RoPE (SPEC-NOTES §3): position ids exact, cos/sin and rotation under the tolerance model, and the RoPE
invariants (norm per rotation pair, relative offsets, identity at 0, pixel-row order, frames tiled), each with a
negative control."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

from vitspec.reference import patchify as ref_patchify, rope as ref_rope
from vitspec.tests import baseline, strategies as S, tolerance
from vitspec.tests.capability import declared
from vitspec.tests.checks import assert_close, assert_index_equal, fail, target_dtype, to_numpy
from vitspec.tests.rotary_inputs import as_form, rotary_for

head_dims = st.sampled_from([8, 16, 32, 80])


@pytest.mark.stage("rotary_position_ids")
@given(S.grid_lists(max_cells=20, max_t=4, max_patches=3000))
@example([(3, 10, 22)])
@example([(1, 2, 40), (2, 6, 4)])
def test_rotary_position_ids_match_reference(stage, grid_thw):
    got = stage("rotary_position_ids")(np.array(grid_thw, dtype=np.int64))
    assert_index_equal("rotary_position_ids", got, ref_rope.rotary_position_ids(grid_thw), grid_thw=grid_thw)


def coordinate_frames(t: int, h: int, w: int) -> np.ndarray:
    """Frames whose channel 0 holds each pixel's patch row and channel 1 its patch column (arange-coded)."""
    ys, xs = np.meshgrid(np.arange(h * 14) // 14, np.arange(w * 14) // 14, indexing="ij")
    frame = np.stack([ys, xs, np.zeros_like(ys)]).astype(np.float64)
    return np.broadcast_to(frame, (2 * t, 3, h * 14, w * 14))


def check_positions_follow_pixel_rows(grid_thw, position_ids) -> None:
    """ROPE-ORDER and ROPE-FRAMES: the id of pixel_values row r is the (row, col) of the pixels in that row, and
    every frame of a video carries the same ids (tiled, not repeated element-wise)."""
    expected = []
    for t, h, w in grid_thw:
        rows, _ = ref_patchify.patchify(coordinate_frames(t, h, w))
        expected.append(rows[:, [0, 2 * 14 * 14]].astype(np.int64))  # channel 0 and channel 1, first pixel
    expected = np.concatenate(expected)
    got = to_numpy(position_ids)
    if got.shape != expected.shape or not np.array_equal(got, expected):
        bad = int(np.flatnonzero(np.any(got != expected, axis=1))[0]) if got.shape == expected.shape else 0
        fail(
            "rotary_position_ids",
            "position ids do not follow the pixel rows' (row, col)",
            dict(grid_thw=grid_thw),
            [
                f"row {bad}: got {got[bad].tolist() if got.shape == expected.shape else got.shape}, pixels say "
                f"{expected[bad].tolist()}"
            ],
        )


@pytest.mark.stage("rotary_position_ids")
@given(S.grid_lists(max_cells=8, max_t=3, max_patches=500))
@example([(3, 4, 6)])
def test_positions_follow_pixel_rows(stage, grid_thw):
    check_positions_follow_pixel_rows(grid_thw, stage("rotary_position_ids")(np.array(grid_thw, dtype=np.int64)))


def raster_positions(grid_thw):
    """Positions in raster order of the patches, ignoring the merge blocks."""
    return np.concatenate([np.stack(np.divmod(np.arange(h * w), w), axis=1) for t, h, w in grid_thw for _ in range(t)])


def repeated_not_tiled(grid_thw):
    out = [np.repeat(ref_rope.rotary_position_ids([(1, h, w)]), t, axis=0) for t, h, w in grid_thw]
    return np.concatenate(out)


@pytest.mark.negative_control
@pytest.mark.stage("rotary_position_ids")
@pytest.mark.parametrize("planted", [raster_positions, repeated_not_tiled], ids=lambda f: f.__name__)
def test_position_check_rejects(planted):
    check_positions_follow_pixel_rows([(2, 4, 6)], ref_rope.rotary_position_ids([(2, 4, 6)]))
    with pytest.raises(AssertionError, match="do not follow"):
        check_positions_follow_pixel_rows([(2, 4, 6)], planted([(2, 4, 6)]))


@pytest.mark.stage("rotary_angles")
@given(S.positions(), head_dims)
def test_rotary_angles_match_reference(stage, target, position_ids, head_dim):
    dtype = target_dtype(target)
    got = stage("rotary_angles")(position_ids, head_dim)
    mag = tolerance.angle(position_ids, head_dim, dtype)[:, : head_dim // 2]
    assert_close(
        "rotary_angles",
        got,
        ref_rope.rotary_angles(position_ids, head_dim),
        K=1,
        magnitude=mag,
        dtype=dtype,
        baseline=lambda: baseline.rotary_angles(position_ids, head_dim, dtype),
        position_ids=position_ids[:6],
        head_dim=head_dim,
    )


def check_angle_invariants(angles, pos, other, head_dim: int, dtype: str) -> None:
    """ROPE-ANGLES: the angles are linear in the position (angles(p + q) = angles(p) + angles(q)), the first half
    depends only on the row and the second only on the column, and (0, 0) has angle 0. Judged at float32 precision
    or finer whatever the dtype: the spec computes angles in float32 or wider (SPEC-NOTES §3)."""
    eps = min(tolerance.EPS[dtype], tolerance.EPS["float32"])
    c = tolerance.TABLE["rotary_angles"].c
    half = head_dim // 2
    ctx = dict(position_ids=pos[:4], head_dim=head_dim, dtype=dtype)
    a_p, a_q, a_pq = (to_numpy(angles(p, head_dim)) for p in (pos, other, pos + other))
    mag = 1.0 + np.abs(a_p) + np.abs(a_q)
    err = np.abs(a_pq - a_p - a_q) / (eps * mag)
    if not np.max(err) <= 2 * c:
        fail(
            "rotary_angles",
            f"angles are not linear in the position: angles(p+q) - angles(p) - angles(q) is "
            f"{np.max(err):.3g} x eps*magnitude",
            ctx,
        )
    rows_only = pos.copy()
    rows_only[:, 1] = 0
    cols_only = pos.copy()
    cols_only[:, 0] = 0
    a_r, a_c = to_numpy(angles(rows_only, head_dim)), to_numpy(angles(cols_only, head_dim))
    if np.any(a_r[:, half // 2 :] != 0) or np.any(a_c[:, : half // 2] != 0):
        fail(
            "rotary_angles",
            "the first head_dim/4 angles must depend only on the row and the last head_dim/4 only on the column",
            ctx,
        )
    zero = to_numpy(angles(np.zeros_like(pos), head_dim))
    if np.any(zero != 0):
        fail("rotary_angles", "position (0, 0) must have angle 0", ctx)


@pytest.mark.stage("rotary_angles")
@given(S.seeds, st.sampled_from([8, 16, 80]))
def test_rotary_angle_invariants(stage, target, seed, head_dim):
    rng = S.rng(seed)
    pos, other = rng.integers(0, 300, (16, 2)), rng.integers(0, 300, (16, 2))
    check_angle_invariants(stage("rotary_angles"), pos, other, head_dim, target_dtype(target))


def angles_interleaved(pos, head_dim):
    """Row and column angles interleaved [r f0, c f0, r f1, ...] instead of [row half | column half]."""
    freqs = ref_rope.inv_freq(head_dim)
    return np.stack([pos[:, :1] * freqs, pos[:, 1:] * freqs], axis=-1).reshape(len(pos), -1)


def angles_of_bfloat16_positions(pos, head_dim):
    """Positions rounded to bf16 before the angles (above 256 they snap to even values)."""
    import torch

    return ref_rope.rotary_angles(
        torch.as_tensor(pos, dtype=torch.float64).to(torch.bfloat16).double().numpy(), head_dim
    )


def angles_one_based(pos, head_dim):
    return ref_rope.rotary_angles(pos + 1, head_dim)


PLANTED_ANGLES = {
    "angles_interleaved": "depend only on the row",
    "angles_of_bfloat16_positions": "not linear",
    "angles_one_based": "not linear",
}


@pytest.mark.negative_control
@pytest.mark.stage("rotary_angles")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("planted", sorted(PLANTED_ANGLES))
def test_rotary_angle_invariants_reject(planted, dtype):
    rng = S.rng(1)
    pos, other = rng.integers(0, 300, (16, 2)), rng.integers(0, 300, (16, 2))
    check_angle_invariants(ref_rope.rotary_angles, pos, other, 16, dtype)
    with pytest.raises(AssertionError, match=PLANTED_ANGLES[planted]):
        check_angle_invariants(globals()[planted], pos, other, 16, dtype)


@pytest.mark.stage("rotary_cos_sin")
@given(S.positions(), head_dims)
def test_rotary_cos_sin_matches_reference(stage, target, position_ids, head_dim):
    dtype = target_dtype(target)
    cos, sin = stage("rotary_cos_sin")(position_ids, head_dim)
    ref_cos, ref_sin = ref_rope.rotary_cos_sin(position_ids, head_dim)
    base = lambda: baseline.rotary_cos_sin(position_ids, head_dim, dtype)  # noqa: E731
    mag = tolerance.angle(position_ids, head_dim, dtype)
    ctx = dict(position_ids=position_ids[:6], head_dim=head_dim)
    assert_close(
        "rotary_cos_sin", cos, ref_cos, K=1, magnitude=mag, dtype=dtype, baseline=lambda: base()[0], output="cos", **ctx
    )
    assert_close(
        "rotary_cos_sin", sin, ref_sin, K=1, magnitude=mag, dtype=dtype, baseline=lambda: base()[1], output="sin", **ctx
    )


@pytest.mark.stage("apply_rotary")
@given(S.positions(), head_dims, st.integers(1, 3), S.seeds, S.scales)
def test_apply_rotary_matches_reference(stage, target, position_ids, head_dim, heads, seed, scale):
    dtype = target_dtype(target)
    x = S.normal(seed, (len(position_ids), heads, head_dim), scale)
    angles = ref_rope.rotary_angles(position_ids, head_dim)
    cos, sin = ref_rope.rotary_cos_sin(position_ids, head_dim)
    got = stage("apply_rotary")(x, rotary_for(target, angles))
    # A target that takes angles computes cos and sin itself, in float32 or wider (SPEC-NOTES §3): the angle's
    # float32 rounding (eps * |angle|) is part of the stage's error budget; given (cos, sin), it is not.
    mag = tolerance.pair(x) * (
        tolerance.angle(position_ids, head_dim, dtype)[:, None, :] if declared(target).rotary == "angles" else 1
    )
    assert_close(
        "apply_rotary",
        got,
        ref_rope.apply_rotary(x, angles),
        K=2,
        magnitude=mag,
        dtype=dtype,
        baseline=lambda: baseline.apply_rotary(x, cos, sin, dtype),
        position_ids=position_ids[:6],
        head_dim=head_dim,
        heads=heads,
        seed=seed,
        scale=scale,
    )


def check_rope_invariants(rope, x, y, pos, shift, dtype: str) -> None:
    """ROPE-NORM, ROPE-RELATIVE, ROPE-ZERO for rope(x (N, H, d), position_ids) -> rotated x."""
    ctx = dict(position_ids=pos[:4], shift=shift, dtype=dtype)
    c = tolerance.TABLE["apply_rotary"].c * tolerance.EPS[dtype]
    half = x.shape[-1] // 2
    rx = to_numpy(rope(x, pos))
    pair_norm = lambda a: a[..., :half] ** 2 + a[..., half:] ** 2  # noqa: E731
    err = np.abs(pair_norm(rx) - pair_norm(x)) / pair_norm(x)
    if not np.max(err) <= 4 * c:
        fail("apply_rotary", f"rotation pairs (i, i+d/2) change norm by {np.max(err):.3e} relative", ctx)
    other = pos[::-1].copy()  # y sits at other positions than x
    dots = np.sum(rx * to_numpy(rope(y, other)), -1)
    dots_shifted = np.sum(to_numpy(rope(x, pos + shift)) * to_numpy(rope(y, other + shift)), -1)
    scale = np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1)
    err = np.abs(dots - dots_shifted) / scale
    if not np.max(err) <= 4 * c * np.sqrt(x.shape[-1]):
        fail("apply_rotary", f"q·k changes by {np.max(err):.3e} (relative) when both positions shift by {shift}", ctx)
    r0 = to_numpy(rope(x, np.zeros_like(pos)))
    err = np.abs(r0 - x) / tolerance.pair(x)
    if not np.max(err) <= 2 * c:
        fail("apply_rotary", f"position (0, 0) does not rotate by zero (error {np.max(err):.3e})", ctx)


@pytest.mark.stage("apply_rotary", helpers=("rotary_angles",))
@given(S.seeds, st.sampled_from([8, 16, 80]), st.integers(1, 2), st.tuples(st.integers(-40, 40), st.integers(-40, 40)))
def test_rope_invariants(stage, target, seed, head_dim, heads, shift):
    """The target's angles handed to its own apply_rotary in the form it declares (as a port chains them); a target
    without rotary_angles gets the reference's angles, and its apply_rotary is still checked."""
    rng = S.rng(seed)
    pos = rng.integers(41, 300, (16, 2))
    x, y = (rng.standard_normal((16, heads, head_dim)) for _ in range(2))
    angles, apply = stage.or_reference("rotary_angles"), stage("apply_rotary")
    check_rope_invariants(
        lambda a, p: apply(a, rotary_for(target, to_numpy(angles(p, head_dim)))),
        x,
        y,
        pos,
        np.array(shift),
        target_dtype(target),
    )


@pytest.mark.modules
@pytest.mark.stage("apply_rotary")
@pytest.mark.parametrize("form", ["angles", "cos_sin"])
@given(S.positions(), head_dims, st.integers(1, 3), S.seeds)
def test_impl_apply_rotary_in_both_forms(form, position_ids, head_dim, heads, seed):
    """impl takes either rotary form (with_options(rotary=...)); both match the reference in float32."""
    from vitspec import impl

    x = S.normal(seed, (len(position_ids), heads, head_dim))
    angles = ref_rope.rotary_angles(position_ids, head_dim)
    got = impl.TARGET.with_options(dtype="float32", rotary=form).apply_rotary(x, as_form(angles, form))
    assert_close(
        "apply_rotary",
        got,
        ref_rope.apply_rotary(x, angles),
        K=2,
        magnitude=tolerance.pair(x),
        dtype="float32",
        form=form,
        head_dim=head_dim,
        heads=heads,
        seed=seed,
    )


def interleaved_cos_sin(pos, head_dim):
    """cos/sin repeated element-wise [a0, a0, a1, a1, ...] instead of concatenated: wrong rotation pairs."""
    freqs = ref_rope.inv_freq(head_dim)
    angles = np.repeat(np.concatenate([pos[:, :1] * freqs, pos[:, 1:] * freqs], axis=1), 2, axis=1)
    return np.cos(angles), np.sin(angles)


def unsigned_rotate_half(a, cos_sin):
    cos, sin = cos_sin
    half = a.shape[-1] // 2
    return a * cos[:, None] + np.concatenate([a[..., half:], a[..., :half]], axis=-1) * sin[:, None]


def one_based_positions(pos, head_dim):
    return ref_rope.rotary_cos_sin(pos + 1, head_dim)


def bfloat16_positions(pos, head_dim):
    """Positions rounded to bf16 (8 significant bits): above 256 they snap to even values."""
    import torch

    return ref_rope.rotary_cos_sin(
        torch.as_tensor(pos, dtype=torch.float64).to(torch.bfloat16).double().numpy(), head_dim
    )


PLANTED_ROPE = {  # name -> (cos_sin, apply, the invariant that must reject it)
    "interleaved_cos_sin": (interleaved_cos_sin, ref_rope.apply_rotary, "change norm"),
    "unsigned_rotate_half": (ref_rope.rotary_cos_sin, unsigned_rotate_half, "change norm"),
    "one_based_positions": (one_based_positions, ref_rope.apply_rotary, "does not rotate by zero"),
    "bfloat16_positions": (bfloat16_positions, ref_rope.apply_rotary, "q·k changes"),
}


@pytest.mark.negative_control
@pytest.mark.stage("apply_rotary")
@pytest.mark.parametrize("planted", sorted(PLANTED_ROPE))
def test_rope_invariants_reject(planted):
    rng = S.rng(0)
    pos, shift = rng.integers(41, 300, (16, 2)), np.array([3, -5])
    x, y = (rng.standard_normal((16, 2, 16)) for _ in range(2))
    cos_sin, apply, message = PLANTED_ROPE[planted]
    check_rope_invariants(
        lambda a, p: ref_rope.apply_rotary(a, ref_rope.rotary_cos_sin(p, 16)), x, y, pos, shift, "float32"
    )
    with pytest.raises(AssertionError, match=message):
        check_rope_invariants(lambda a, p: apply(a, cos_sin(p, 16)), x, y, pos, shift, "float32")
