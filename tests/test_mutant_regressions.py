"""Checks added because mutmut mutants of the reference's index code (setup.cfg [mutmut]) survived the suite.

They pin the default arguments at the exact pixel limits, and check that the reference honours its
merge_size, window_size and temporal_patch_size arguments (every released model uses 2, 112 and 2, so no other
test varies them), that each image of a prompt gets its own pad count, and that patchify's own geometry rule,
not a later crash, refuses a bad side.
"""

from __future__ import annotations

import numpy as np
import pytest

from vitspec.reference import (
    TARGET as REFERENCE,
    patchify as ref_patchify,
    resize as ref_resize,
    rope as ref_rope,
    tokens as ref_tokens,
    windows as ref_windows,
)
from vitspec.spec.configs import IMAGE_PAD_ID


@pytest.mark.stage("smart_resize")
@pytest.mark.parametrize(
    "size, expected",
    [
        ((56, 56), (56, 56)),
        ((60, 52), (56, 56)),
        ((3584, 3584), (3584, 3584)),
        ((3580, 3590), (3584, 3584)),
        ((1, 200), (28, 812)),
    ],
    ids=str,
)
def test_smart_resize_defaults_at_the_exact_pixel_limits(stage, size, expected):
    """§1.1 defaults (min 3136, max 12845056, HF): h'w' equal to a limit is inside it (neither branch runs)."""
    assert tuple(int(v) for v in stage("smart_resize")(*size)) == expected
    assert ref_resize.smart_resize(*size) == expected


@pytest.mark.conformance
@pytest.mark.stage("window_index")
def test_window_cells_default_and_one_cell_windows():
    """§3: 112-px windows are 4 cells; a 28-px window is 1 cell (valid): every cell is its own window."""
    assert ref_windows.window_cells() == 4 and ref_windows.window_cells(28) == 1
    index, cu = ref_windows.window_index([(1, 4, 6)], window_size=28)
    assert index.tolist() == list(range(6)) and cu.tolist() == list(range(0, 28, 4))


def merge_origins(t: int, h: int, w: int, m: int) -> np.ndarray:
    """(frame, row, col) of each pixel_values row for merge size m, from §1.3's closed form."""
    r = np.arange(t * h * w)
    frame, rest = np.divmod(r, h * w)
    block, inner = np.divmod(rest, m * m)
    bh, bw = np.divmod(block, w // m)
    mh, mw = np.divmod(inner, m)
    return np.stack([frame, bh * m + mh, bw * m + mw], axis=1)


@pytest.mark.conformance
@pytest.mark.stage("patchify", "rotary_position_ids", "num_image_tokens", "cu_seqlens", "window_index")
@pytest.mark.parametrize(
    "m, grid, cu_window",
    [
        (1, (2, 10, 12), [0, 64, 96, 112, 120, 184, 216, 232, 240]),  # 8x8-cell windows of a 10x12 grid, 2 frames
        (3, (1, 12, 15), [0, 36, 72, 90, 126, 162, 180]),  # 2x2-cell windows of a 4x5 merged grid
    ],
)
def test_reference_honours_merge_size(m, grid, cu_window):
    """§1.3, §3, §4 with merge_size m != 2: rows, positions, tokens, segments and windows all follow m."""
    t, h, w = grid
    P, T = 2, 2
    frames = np.arange(t * T * 3 * h * P * w * P, dtype=np.float64).reshape(t * T, 3, h * P, w * P)
    rows, got_grid = ref_patchify.patchify(frames, P, T, m)
    origins = merge_origins(t, h, w, m)
    for r, (f, y, x) in enumerate(origins):
        patch = frames[f * T : (f + 1) * T, :, y * P : (y + 1) * P, x * P : (x + 1) * P].transpose(1, 0, 2, 3)
        assert np.array_equal(rows[r], patch.reshape(-1)), r
    assert got_grid.tolist() == [t, h, w]
    assert np.array_equal(ref_patchify.unpatchify(rows, got_grid, 3, P, T, m), frames)
    assert np.array_equal(ref_rope.rotary_position_ids([grid], m), origins[:, 1:])
    tokens = ref_tokens.num_image_tokens([grid], m)
    assert tokens.dtype == np.int64 and tokens.tolist() == [t * h * w // (m * m)]
    assert ref_windows.cu_seqlens([grid], m).tolist() == [f * h * w for f in range(t + 1)]
    assert ref_windows.window_index([grid], 112, 14, m)[1].tolist() == cu_window


@pytest.mark.conformance
@pytest.mark.stage("num_image_tokens")
def test_expand_image_pads_gives_each_image_its_own_count():
    """§4: the k-th image pad becomes num_image_tokens[k] pads, for every k (4 images of 4 different counts)."""
    grid = [(1, 2, 2), (1, 4, 4), (2, 4, 6), (1, 2, 4)]  # 1, 4, 12 and 2 tokens
    ids = [7, IMAGE_PAD_ID, 8, IMAGE_PAD_ID, IMAGE_PAD_ID, 9, IMAGE_PAD_ID]
    expanded = ref_tokens.expand_image_pads(ids, grid)
    assert expanded == [7] + [IMAGE_PAD_ID] + [8] + [IMAGE_PAD_ID] * 16 + [9] + [IMAGE_PAD_ID] * 2
    assert ref_tokens.expand_image_pads([IMAGE_PAD_ID], [(1, 2, 3)], merge_size=1) == [IMAGE_PAD_ID] * 6


@pytest.mark.conformance
@pytest.mark.stage("patchify")
@pytest.mark.parametrize(
    "shape", [(2, 3, 42, 28), (2, 3, 28, 42), (2, 3, 14, 28), (2, 3, 28, 14), (2, 3, 28, 0)], ids=str
)
def test_reference_patchify_refuses_sides_by_its_rule(shape):
    """§1.3: a side that is not a positive multiple of 28 is refused by the geometry check itself."""
    with pytest.raises(ValueError, match="multiples of patch_size"):
        REFERENCE.patchify(np.zeros(shape))  # the reference as a target: its input rules applied


@pytest.mark.conformance
@pytest.mark.stage("patchify")
def test_reference_patchify_one_frame_with_temporal_patch_1():
    """§1.3 with temporal_patch_size 1: a single frame is a whole temporal patch."""
    rows, grid = ref_patchify.patchify(np.zeros((1, 3, 28, 28)), temporal_patch_size=1)
    assert rows.shape == (4, 3 * 14 * 14) and grid.tolist() == [1, 2, 2]
