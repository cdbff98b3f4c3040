"""Checks added because a planted-bug mutant (spec/mutant_catalogue.py) or a mutmut mutant of the reference
(setup.cfg [mutmut]) survived. Each test names what it kills.

The preprocessing checks run the TARGET's stage (the `stage` fixture): tests/test_resize.py, test_pixels.py and
test_patchify.py call impl's modules directly, so `--target` never reached those stages. Others pin inputs the
strategies do not reach within a few examples, or check that the reference honours its merge_size, window_size
and default arguments (every released model uses 2, 112 and the released pixel limits, so nothing else does).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

from reference import patchify as ref_patchify, pixels as ref_pixels, resize as ref_resize, rope as ref_rope
from reference import tokens as ref_tokens, windows as ref_windows
from spec.configs import IMAGE_PAD_ID
from tests import tolerance as T
from tests.checks import assert_close, assert_index_equal, target_dtype, to_numpy
from tests.test_patchify import check_layout, frame_shapes
from tests.test_pixels import ATOL, PIXEL_LIMITS, check_close, make_item, mixed_batches
from tests.test_resize import FLOAT_CASES, check_ties_to_even, make_image, resize_cases, smart_resize_inputs

REAL_GRIDS = ([(1, 36, 36)], [(1, 78, 138)], [(2, 36, 40), (1, 44, 36)], [(1, 138, 78)])  # >= 16 windows per frame


@pytest.mark.stage("smart_resize")
def test_target_smart_resize_rounds_ties_to_even(stage):
    """Kills smart_resize_round_half_up: 70 -> 56, 98 -> 112 through the target."""
    check_ties_to_even(stage("smart_resize"))


@pytest.mark.stage("smart_resize")
@given(args=smart_resize_inputs(), variant=st.sampled_from(["hf", "qvu"]))
@example(args=(15, 3000, 3136, 80000), variant="hf")  # floor branch would give 0: HF clamps to 28
@example(args=(42, 1000, 3136, 40000), variant="hf")  # beta from the original size, not the rounded one
@example(args=(300, 40, 3136, 12845056), variant="qvu")  # non-square: height and width kept apart
@example(args=FLOAT_CASES[0], variant="hf")
def test_target_smart_resize_equals_reference(stage, args, variant):
    """Kills smart_resize_floor_unclamped, _beta_from_rounded, _height_width_swapped (§1.1 through the target)."""
    h, w, lo, hi = args
    got = tuple(int(v) for v in stage("smart_resize")(h, w, 28, lo, hi, variant))
    assert got == ref_resize.smart_resize(h, w, 28, lo, hi, variant), (args, variant, got)


@pytest.mark.stage("resize")
@given(case=resize_cases())
@example(case=(93, 13, 31, 7, "random", 1))  # Pillow 13 runs the vertical pass first here
def test_target_resize_equals_reference(stage, case):
    """Kills resize_horizontal_pass_first: the target's bicubic equals the reference bit for bit."""
    h, w, oh, ow, pattern, seed = case
    image = make_image(seed, h, w, pattern)
    got = to_numpy(stage("resize")(image, oh, ow))
    assert got.shape == (oh, ow, 3) and np.array_equal(got, ref_resize.resize(image, oh, ow)), case


@pytest.mark.stage("preprocess")
@given(batch=mixed_batches(), limits=st.sampled_from(sorted(PIXEL_LIMITS)))
@example(batch=[(70, 98, "random", 1, 0), (37, 53, "checkerboard", 2, 3)], limits="released")
def test_target_preprocess_equals_reference(stage, batch, limits):
    """Kills the preprocess_*, smart_resize_* and patchify_* mutants seen through preprocess (§1 end to end)."""
    items = [make_item(*spec) for spec in batch]
    expected, expected_grid = ref_pixels.preprocess(items, *PIXEL_LIMITS[limits])
    values, grid = stage("preprocess")(items, *PIXEL_LIMITS[limits])
    assert to_numpy(grid).tolist() == expected_grid.tolist(), (batch, to_numpy(grid).tolist())
    check_close(values, expected, ATOL["float32"], f"target pixel_values of {batch}")


@pytest.mark.stage("patchify")
@given(shape=frame_shapes())
@example(shape=(4, 56, 84))  # a video, non-square, several merge blocks
def test_target_patchify_layout_closed_form(stage, shape):
    """Kills patchify_raster_rows, _time_before_channel, _block_column_major: §1.3 on arange frames."""
    check_layout(stage("patchify"), *shape)


@pytest.mark.stage("window_index")
@pytest.mark.parametrize("grid_thw", REAL_GRIDS, ids=str)
def test_window_index_at_real_image_sizes(stage, grid_thw):
    """Kills window_sort_key_bfloat16: sort keys above 256 (16+ windows per frame, e.g. 1080x1920) stay exact."""
    index, cu = stage("window_index")(np.array(grid_thw, dtype=np.int64))
    ref_index, ref_cu = ref_windows.window_index(grid_thw)
    assert_index_equal("window_index", index, ref_index, grid_thw=grid_thw)
    assert_index_equal("window_index", cu, ref_cu, grid_thw=grid_thw)


@st.composite
def far_positions(draw):
    """(row, col) ids up to 1500 (a 16384*784-pixel image reaches ~3600 px, 256 patches a side; videos and
    long images further): odd values above 256 are where a bf16 position or angle is rounded."""
    n = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    top = draw(st.sampled_from([300, 600, 1500]))
    return np.random.default_rng(seed).integers(0, top, (n, 2))


@pytest.mark.stage("rotary_cos_sin")
@given(far_positions(), st.sampled_from([16, 80]))
@example(np.array([[257, 511], [1023, 3], [0, 1]]), 80)
def test_rotary_cos_sin_is_float32_accurate_in_any_model_dtype(stage, target, position_ids, head_dim):
    """Kills rope_angles_in_model_dtype: §3 keeps inv_freq, angles and cos/sin in float32 even in a bf16 model."""
    cos, sin = stage("rotary_cos_sin")(position_ids, head_dim)
    ref_cos, ref_sin = ref_rope.rotary_cos_sin(position_ids, head_dim)
    wide = "float64" if target_dtype(target) == "float64" else "float32"
    for got, ref in ((cos, ref_cos), (sin, ref_sin)):
        assert_close("rotary_cos_sin", got, ref, K=1, magnitude=T.angle(position_ids, head_dim), dtype=wide,
                     position_ids=position_ids, head_dim=head_dim, model_dtype=target_dtype(target))


@pytest.mark.stage("smart_resize")
@pytest.mark.parametrize("size, expected", [((56, 56), (56, 56)), ((60, 52), (56, 56)), ((3584, 3584), (3584, 3584)),
                                            ((3580, 3590), (3584, 3584)), ((1, 200), (28, 812))], ids=str)
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
@pytest.mark.parametrize("m, grid, cu_window", [
    (1, (2, 10, 12), [0, 64, 96, 112, 120, 184, 216, 232, 240]),  # 8x8-cell windows of a 10x12 grid, 2 frames
    (3, (1, 12, 15), [0, 36, 72, 90, 126, 162, 180]),  # 2x2-cell windows of a 4x5 merged grid
])
def test_reference_honours_merge_size(m, grid, cu_window):
    """§1.3, §3, §4 with merge_size m != 2: rows, positions, tokens, segments and windows all follow m."""
    t, h, w = grid
    P, T = 2, 2
    frames = np.arange(t * T * 3 * h * P * w * P, dtype=np.float64).reshape(t * T, 3, h * P, w * P)
    rows, got_grid = ref_patchify.patchify(frames, P, T, m)
    origins = merge_origins(t, h, w, m)
    for r, (f, y, x) in enumerate(origins):
        patch = frames[f * T:(f + 1) * T, :, y * P:(y + 1) * P, x * P:(x + 1) * P].transpose(1, 0, 2, 3)
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
@pytest.mark.parametrize("shape", [(2, 3, 42, 28), (2, 3, 28, 42), (2, 3, 14, 28), (2, 3, 28, 14), (2, 3, 28, 0)],
                         ids=str)
def test_reference_patchify_refuses_sides_by_its_rule(shape):
    """§1.3: a side that is not a positive multiple of 28 is refused by the geometry check itself."""
    with pytest.raises(ValueError, match="multiples of patch_size"):
        ref_patchify.patchify(np.zeros(shape))


@pytest.mark.conformance
@pytest.mark.stage("patchify")
def test_reference_patchify_one_frame_with_temporal_patch_1():
    """§1.3 with temporal_patch_size 1: a single frame is a whole temporal patch."""
    rows, grid = ref_patchify.patchify(np.zeros((1, 3, 28, 28)), temporal_patch_size=1)
    assert rows.shape == (4, 3 * 14 * 14) and grid.tolist() == [1, 2, 2]
