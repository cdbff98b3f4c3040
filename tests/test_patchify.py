"""Flattening frames to pixel_values (SPEC-NOTES §1.3) and the document's 588 layout (§2), bit-exact on arange
inputs so every misplaced element is visible. Each layout check is a function that is shown to reject a
planted bug (negative controls at the end)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import event, example, given, settings, strategies as st

import vitspec.impl.patchify as ip
import vitspec.reference.patchify as rp
from vitspec.reference import TARGET as REFERENCE
from vitspec.tests.checks import to_numpy

P, T, M, C = 14, 2, 2, 3
pytestmark = [
    pytest.mark.stage("patchify"),
    pytest.mark.modules,
]  # vitspec.impl.patchify and vitspec.reference.patchify directly


def arange_frames(frames: int, height: int, width: int) -> np.ndarray:
    """Frames (F, C, H, W) whose value is their own flat index, so each output element names its source."""
    return np.arange(frames * C * height * width, dtype=np.float64).reshape(frames, C, height, width)


@st.composite
def frame_shapes(draw, max_cells: int = 5):
    """(frames, height, width): frames a multiple of T, sides multiples of P*M, 1x1 merged grids included."""
    gt, ch, cw = draw(st.integers(1, 3)), draw(st.integers(1, max_cells)), draw(st.integers(1, max_cells))
    event("merged grid 1xn or nx1" if min(ch, cw) == 1 else "merged grid >= 2x2")
    event("video" if gt > 1 else "still")
    return gt * T, ch * P * M, cw * P * M


def check_layout(patchify, frames: int, height: int, width: int) -> None:
    """LAYOUT-ROWS, LAYOUT-COLUMNS: §1.3 from its closed forms: row = ((t*gh/2 + bh)*gw/2 + bw)*4 + 2*mh + mw, col = ((c*2 + tt)*14 + py)*14 + px,
    and grid_thw = [F/T, H/P, W/P]. Raises AssertionError naming the first wrong element."""
    x = arange_frames(frames, height, width)
    rows, grid = patchify(x)
    rows, grid = to_numpy(rows), to_numpy(grid)
    gt, gh, gw = frames // T, height // P, width // P
    assert grid.tolist() == [gt, gh, gw], f"grid_thw {grid.tolist()} != {[gt, gh, gw]}"
    assert rows.shape == (gt * gh * gw, C * T * P * P), f"shape {rows.shape}"
    f, c, y, xx = np.unravel_index(rows.astype(np.int64), x.shape)  # source of every output element
    r = np.arange(rows.shape[0])[:, None]
    col = np.arange(rows.shape[1])[None, :]
    t, rest = np.divmod(r, gh * gw)
    block, inner = np.divmod(rest, M * M)
    bh, bw = np.divmod(block, gw // M)
    mh, mw = np.divmod(inner, M)
    cc, rest = np.divmod(col, T * P * P)
    tt, rest = np.divmod(rest, P * P)
    py, px = np.divmod(rest, P)
    expected = {"frame": t * T + tt, "channel": cc, "y": (bh * M + mh) * P + py, "x": (bw * M + mw) * P + px}
    for name, got in zip(expected, (f, c, y, xx)):
        bad = np.argwhere(got != np.broadcast_to(expected[name], got.shape))
        assert bad.size == 0, f"{name} wrong at row {bad[0][0]}, column {bad[0][1]} ({len(bad)} elements)"


def check_inverse(patchify, unpatchify, frames: int, height: int, width: int) -> None:
    """LAYOUT-INVERSE: unpatchify(patchify(x)) == x exactly."""
    x = arange_frames(frames, height, width)
    rows, grid = patchify(x)
    back = to_numpy(unpatchify(rows, grid))
    assert back.shape == x.shape and np.array_equal(back, x), "unpatchify does not invert patchify"


def check_document_columns(patchify, height: int, width: int) -> None:
    """LAYOUT-DOCUMENT: §2: for a still image, each model row restricted to one frame is the document's 588-row of the same patch,
    permuted by document_to_model_columns; both temporal slots are identical."""
    rng = np.random.default_rng(height * 1000 + width)
    image = rng.integers(0, 256, (height, width, C)).astype(np.float64)
    frames = np.repeat(image.transpose(2, 0, 1)[None], T, axis=0)
    rows, (_, gh, gw) = patchify(frames)
    rows = to_numpy(rows).reshape(-1, C, T, P * P)
    assert np.array_equal(rows[:, :, 0], rows[:, :, 1]), "the two frames of a still image differ"
    per_frame = rows[:, :, 0].reshape(len(rows), C * P * P)
    document = rp.document_patches(image, P)  # raster patch order, (P, P, C) columns
    perm = rp.document_to_model_columns(P, C)
    for r in range(len(rows)):
        _, y, x = rp.patch_row_origin(r, int(gh), int(gw), M)
        assert np.array_equal(per_frame[r], document[y * int(gw) + x][perm]), f"row {r} (patch {y}, {x}) differs"


# --- the reference and the impl, on the spec's closed forms --------------------------------------------------

# the reference's patchify as a target calls it: its input rules applied (reference/patchify.py is the math only)
IMPLEMENTATIONS = {"reference": (REFERENCE.patchify, rp.unpatchify), "impl": (ip.patchify, ip.unpatchify)}


@pytest.mark.parametrize("which", IMPLEMENTATIONS)
@settings(deadline=None)
@given(shape=frame_shapes())
@example(shape=(2, 28, 28))  # one merged cell: row order is only the 2x2 block
@example(shape=(2, 56, 84))
def test_layout_closed_form(which, shape):
    check_layout(IMPLEMENTATIONS[which][0], *shape)


@pytest.mark.parametrize("which", IMPLEMENTATIONS)
@settings(deadline=None)
@given(shape=frame_shapes())
def test_unpatchify_inverts_patchify(which, shape):
    check_inverse(*IMPLEMENTATIONS[which], *shape)


@settings(deadline=None)
@given(shape=frame_shapes(), as_tensor=st.booleans())
def test_impl_equals_reference_exactly(shape, as_tensor):
    x = arange_frames(*shape)
    ref_rows, ref_grid = rp.patchify(x)
    rows, grid = ip.patchify(torch.from_numpy(x) if as_tensor else x)
    assert isinstance(rows, torch.Tensor) and isinstance(grid, torch.Tensor)
    assert grid.dtype == torch.int64 and grid.tolist() == ref_grid.tolist()
    assert np.array_equal(rows.numpy(), ref_rows)


@pytest.mark.parametrize("which", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", [(28, 28), (56, 84), (84, 56)])
def test_document_588_layout_is_the_model_layout_permuted(which, size):
    check_document_columns(IMPLEMENTATIONS[which][0], *size)


def test_document_row_is_588_values_pixel_major_rgb_interleaved():
    image = np.arange(28 * 28 * 3, dtype=np.float64).reshape(28, 28, 3)
    document = rp.document_patches(image, P)
    assert document.shape == (4, 588)
    assert document[0, :6].tolist() == image[0, 0].tolist() + image[0, 1].tolist()  # R1 G1 B1 R2 G2 B2


@pytest.mark.parametrize("which", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "bad, error",
    [
        (np.zeros((3, 3, 28, 28)), ValueError),  # frames not a multiple of T
        (np.zeros((2, 3, 28, 42)), ValueError),  # width not a multiple of 28
        (np.zeros((2, 3, 0, 28)), ValueError),
        (np.zeros((3, 28, 28)), ValueError),  # missing the frame axis
        ([[1.0]], TypeError),  # not an array
    ],
)
def test_errors(which, bad, error):
    with pytest.raises(error):
        IMPLEMENTATIONS[which][0](bad)


@pytest.mark.parametrize("which", IMPLEMENTATIONS)
def test_non_integer_geometry_is_refused(which):
    with pytest.raises(TypeError, match="patch_size"):
        IMPLEMENTATIONS[which][0](np.zeros((2, 3, 28, 28)), patch_size=14.0)


# --- negative controls: each check above rejects a planted layout bug ---------------------------------------


def raster_rows(frames, **kw):
    """Planted bug: patches in raster order instead of merge-block order."""
    rows, grid = rp.patchify(frames, **kw)
    _, gh, gw = (int(v) for v in grid)
    order = [
        r
        for y in range(gh)
        for x in range(gw)
        for r in range(len(rows))
        if rp.patch_row_origin(r, gh, gw, M)[1:] == (y, x)
    ]
    return rows[order], grid


def time_major_columns(frames, **kw):
    """Planted bug: columns (T, C, P, P) instead of (C, T, P, P)."""
    rows, grid = rp.patchify(frames, **kw)
    return rows.reshape(-1, C, T, P * P).transpose(0, 2, 1, 3).reshape(len(rows), -1), grid


def bgr_columns(frames, **kw):
    """Planted bug: channels reversed."""
    return rp.patchify(frames[:, ::-1], **kw)


def one_frame_inverse(rows, grid, **kw):
    """Planted bug: an inverse that writes only the first temporal slot into both frames."""
    frames = rp.unpatchify(rows, grid, **kw)
    frames[1::T] = frames[0::T]
    return frames


@pytest.mark.negative_control
@pytest.mark.parametrize("planted", [raster_rows, time_major_columns, bgr_columns])
def test_layout_check_rejects_planted_bug(planted):
    check_layout(rp.patchify, 2, 56, 56)
    with pytest.raises(AssertionError):
        check_layout(planted, 2, 56, 56)


@pytest.mark.negative_control
def test_inverse_check_rejects_planted_bug():
    check_inverse(rp.patchify, rp.unpatchify, 2, 28, 28)
    with pytest.raises(AssertionError):
        check_inverse(rp.patchify, one_frame_inverse, 2, 28, 28)


@pytest.mark.negative_control
@pytest.mark.parametrize("planted", [raster_rows, bgr_columns])
def test_document_check_rejects_planted_bug(planted):
    check_document_columns(rp.patchify, 56, 56)
    with pytest.raises(AssertionError):
        check_document_columns(planted, 56, 56)
