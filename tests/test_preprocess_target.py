"""The target's preprocessing stages against the reference (smart_resize, resize, preprocess, patchify),
and the smart_resize invariants RESIZE-MULTIPLE, RESIZE-BUDGET, RESIZE-IDEMPOTENT with negative controls.

tests/test_resize.py, test_pixels.py and test_patchify.py check the reference against upstream and the impl
modules directly; this file checks whichever target the run names, so `vitspec verify --target ...` covers them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import event, example, given, strategies as st

import vitspec.reference.pixels as rpx
import vitspec.reference.resize as rr
from vitspec.reference.patchify import patchify as ref_patchify
from vitspec.spec.protocol import Capabilities
from vitspec.spec.validate import video_size_inputs
from vitspec.tests.capability import declared, require_geometry, require_media, require_variant
from vitspec.tests.checks import assert_index_equal, record_difference, to_numpy
from vitspec.tests.images import ATOL, check_close

F = 28


# Capability requirements as fixtures: a check outside the declaration is skipped (NOT COVERED) before Hypothesis
# draws anything.
@pytest.fixture(scope="module")
def hf_variant(target):
    """Checks that call smart_resize without a variant get the default, HF's."""
    require_variant(target, "hf")


@pytest.fixture(scope="module")
def qvu_variant(target):
    require_variant(target, "qvu")


@pytest.fixture(scope="module")
def default_geometry(target):
    require_geometry(target, temporal_patch_size=2, merge_size=2)


@st.composite
def sizes_and_budgets(draw):
    """(h, w, min_pixels, max_pixels): aspect ratio <= 200 by construction, max >= 10*min, min >= 56*56."""
    short = draw(st.integers(1, 4000))
    ratio = draw(st.one_of(st.just(1.0), st.just(200.0), st.floats(1.0, 200.0)))
    long = max(short, min(int(short * ratio), 200 * short))
    h, w = (short, long) if draw(st.booleans()) else (long, short)
    min_pixels = draw(st.sampled_from([3136, 4 * 3136, 200704]))
    max_pixels = draw(st.sampled_from([10 * min_pixels, 1003520, 12845056]))
    max_pixels = max(max_pixels, 10 * min_pixels)
    event("thin (side < 28)" if min(h, w) < 28 else "side >= 28")
    event("over max budget" if round(h / F) * round(w / F) * F * F > max_pixels else "within max budget")
    return h, w, min_pixels, max_pixels


def check_smart_resize(smart_resize, h, w, min_pixels, max_pixels) -> None:
    """RESIZE-MULTIPLE, RESIZE-BUDGET, RESIZE-IDEMPOTENT (HF variant, SPEC-NOTES §1.1).

    With max >= 10*min and min >= 3136 the ceil branch cannot overshoot max, so the only way past max_pixels
    is the clamp of a floored side to 28; nothing may fall below min_pixels (the ceil branch scales up to it);
    a result within the budget is a fixed point, unless rounding pushed its own aspect ratio past 200 (e.g. 11400x57 -> 11396x56, ratio 203.5), which smart_resize then refuses.
    """
    rh, rw = (int(v) for v in smart_resize(h, w, F, min_pixels, max_pixels))
    assert rh % F == 0 and rw % F == 0 and rh >= F and rw >= F, f"({h}, {w}) -> ({rh}, {rw}): not multiples of 28 >= 28"
    if rh * rw > max_pixels:
        assert min(rh, rw) == F, f"({h}, {w}) -> ({rh}, {rw}) exceeds max_pixels={max_pixels} without the 28-clamp"
    assert rh * rw >= min_pixels, f"({h}, {w}) -> ({rh}, {rw}): {rh * rw} pixels, below min_pixels={min_pixels}"
    if min_pixels <= rh * rw <= max_pixels and max(rh, rw) <= 200 * min(rh, rw):
        again = tuple(int(v) for v in smart_resize(rh, rw, F, min_pixels, max_pixels))
        assert again == (rh, rw), f"not idempotent: ({rh}, {rw}) -> {again}"


@pytest.mark.stage("smart_resize")
@given(sizes_and_budgets())
@example((1, 200, 3136, 12845056))
@example((20, 4000, 3136, 31360))
@example((3584, 3584, 3136, 12845056))
@example((11400, 57, 3136, 1003520))
@example((20, 30, 3136, 12845056))
def test_smart_resize_invariants(stage, hf_variant, args):
    check_smart_resize(stage("smart_resize"), *args)


@pytest.mark.stage("smart_resize")
@given(sizes_and_budgets())
@example((70, 70, 3136, 12845056))
@example((98, 1000, 3136, 12845056))
def test_smart_resize_matches_reference(stage, hf_variant, args):
    h, w, lo, hi = args
    got = tuple(int(v) for v in stage("smart_resize")(h, w, F, lo, hi))
    assert got == rr.smart_resize(h, w, F, lo, hi), f"smart_resize{args}: {got} != reference"


@pytest.mark.stage("smart_resize")
@given(sizes_and_budgets())
@example((1, 200, 3136, 12845056))
@example((10, 2000, 3136, 40000))
def test_smart_resize_qvu_matches_reference(stage, qvu_variant, args):
    """variant='qvu' (qwen-vl-utils' clamps) against the reference, for targets that declare it."""
    h, w, lo, hi = args
    got = tuple(int(v) for v in stage("smart_resize")(h, w, F, lo, hi, "qvu"))
    assert got == rr.smart_resize(h, w, F, lo, hi, "qvu"), f"smart_resize{args}, qvu: {got} != reference"


def multiples_of_14(h, w, factor, lo, hi):
    """Planted bug: rounding to multiples of the patch size instead of 28."""
    return rr.smart_resize(h, w, 14, lo // 4, hi // 4)


def no_max_branch(h, w, factor, lo, hi):
    """Planted bug: the max_pixels branch never taken."""
    return rr.smart_resize(h, w, factor, lo, 10**12)


def ignores_min_pixels(h, w, factor, lo, hi):
    """Planted bug: the min_pixels branch never taken ((20, 30) -> (28, 28) where the spec gives (56, 84))."""
    return rr.smart_resize(h, w, factor, 1, hi)


def always_rescale(h, w, factor, lo, hi):
    """Planted bug: always rescale to the max budget (never returns a fixed point)."""
    beta = math.sqrt(h * w / hi)
    return max(F, math.floor(h / beta / F) * F - F), max(F, math.floor(w / beta / F) * F)


@pytest.mark.negative_control
@pytest.mark.stage("smart_resize")
@pytest.mark.parametrize(
    "planted, args",
    [
        (multiples_of_14, (100, 130, 3136, 12845056)),
        (no_max_branch, (3000, 4000, 3136, 1003520)),
        (ignores_min_pixels, (20, 30, 3136, 12845056)),
        (always_rescale, (224, 224, 3136, 1003520)),
    ],
)
def test_smart_resize_invariants_reject(planted, args):
    check_smart_resize(rr.smart_resize, *args)  # the good function passes on the same input
    with pytest.raises(AssertionError):
        check_smart_resize(planted, *args)


def random_image(seed, h, w):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.stage("resize")
@given(st.integers(1, 90), st.integers(1, 90), st.integers(1, 120), st.integers(1, 120), st.integers(0, 2**16))
def test_resize_equals_reference(stage, h, w, oh, ow, seed):
    image = random_image(seed, h, w)
    got = to_numpy(stage("resize")(image, oh, ow))
    assert_index_equal("resize", got, rr.resize(image, oh, ow), image=(h, w), out=(oh, ow), seed=seed)


def check_preprocess(preprocess, caps, media, **context) -> None:
    """preprocess(media) equals the reference's preprocess under the target's video_rule (capabilities): the grid
    exactly, pixel_values within the float32 tolerance. A video rule other than per_frame is a recorded difference
    (spec/differences.py VIDEO-RESIZE)."""
    values, grid = preprocess(media)
    ref_values, ref_grid = rpx.preprocess(media, video_rule=caps.video_rule)
    assert_index_equal("preprocess", grid, ref_grid, video_rule=caps.video_rule, **context)
    check_close(to_numpy(values), ref_values, ATOL["float32"], f"preprocess {context}")
    if caps.video_rule != "per_frame" and any(np.ndim(m) == 4 for m in media):
        record_difference(
            "preprocess",
            f"video_rule {caps.video_rule}",
            "videos sized with the frames counted in the pixel budget (VIDEO-RESIZE)",
        )


@pytest.mark.stage("preprocess")
@given(
    st.lists(st.tuples(st.integers(1, 3), st.integers(10, 120), st.integers(10, 120)), min_size=1, max_size=3),
    st.integers(0, 2**16),
)
def test_preprocess_equals_reference(stage, target, items, seed):
    """Images and videos (F > 1 frames) mixed; a target without 'video' in its media gets images only here
    (its video checks below are NOT COVERED), one without 'image' videos only."""
    caps = declared(target)
    if "video" not in caps.media:
        items = [(1, h, w) for _, h, w in items]
    if "image" not in caps.media:
        items = [(max(f, 2), h, w) for f, h, w in items]
    rng = np.random.default_rng(seed)
    media = [rng.integers(0, 256, (h, w, 3) if f == 1 else (f, h, w, 3), dtype=np.uint8) for f, h, w in items]
    event("video" if any(f > 1 for f, _, _ in items) else "images only")
    check_preprocess(stage("preprocess"), caps, media, items=items, seed=seed)


@pytest.mark.stage("preprocess")
@pytest.mark.parametrize("frames,size", [(3, 28), (4, 20), (5, 300), (2, 1000)])
def test_preprocess_video_sizes(stage, target, frames, size):
    """Videos whose size the two video rules decide differently (3x28x28: grid [2, 4, 4] per frame, [2, 2, 2]
    with the frames in the budget), checked under the rule the target declares."""
    require_media(target, "video")
    video = np.random.default_rng(frames).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    check_preprocess(stage("preprocess"), declared(target), [video], frames=frames, size=size)


@pytest.mark.stage("preprocess")
def test_preprocess_image_and_video_budgets_apart(stage, target):
    """The image budget sizes images and the video budget sizes videos (per_frame rule: like an image of its own
    budget): a 200x300 image and a 2x200x300 video with different budgets get different sizes."""
    require_media(target, "image")
    require_media(target, "video")
    image = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    video = np.stack([image, image[::-1]])
    caps = declared(target)
    _, grid = stage("preprocess")([image, video], 3136, 28 * 28 * 20, 28 * 28 * 80, 12845056)
    _, ref_grid = rpx.preprocess([image, video], 3136, 28 * 28 * 20, 28 * 28 * 80, 12845056, video_rule=caps.video_rule)
    assert_index_equal("preprocess", grid, ref_grid, budgets="image max 15680, video min 62720")
    assert ref_grid[0, 1] * ref_grid[0, 2] * 196 <= 28 * 28 * 20 < ref_grid[1, 1] * ref_grid[1, 2] * 196


@pytest.mark.conformance
@pytest.mark.stage("preprocess")
def test_reference_video_rules_worked_example():
    """SPEC-NOTES "Ports": a 3x28x28 video gives grid [2, 4, 4] in HF's per-frame rule and [2, 2, 2] when the
    frames count in the budget (mlx-vlm); a still image is sized the same under both rules."""
    video = np.zeros((3, 28, 28, 3), dtype=np.uint8)
    assert rpx.preprocess([video])[1].tolist() == [[2, 4, 4]]
    assert rpx.preprocess([video], video_rule="frames_budget")[1].tolist() == [[2, 2, 2]]
    assert rpx.video_size(3, 28, 28, video_rule="frames_budget") == (28, 28)
    assert rpx.video_size(3, 28, 28) == rr.smart_resize(28, 28) == (56, 56)
    image = np.zeros((28, 28, 3), dtype=np.uint8)
    assert rpx.preprocess([image], video_rule="frames_budget")[1].tolist() == [[1, 4, 4]]
    with pytest.raises(ValueError, match="temporal_patch_size"):  # the rules preprocess_inputs applies to a video
        video_size_inputs(1, 28, 28, 28, 3136, 12845056, 2, "frames_budget", "hf")
    with pytest.raises(ValueError, match="video_rule"):
        video_size_inputs(3, 28, 28, 28, 3136, 12845056, 2, "per_video", "hf")


class FramesBudgetReference:
    """The reference preprocess under the frames_budget video rule, declared (as an mlx-vlm-like port would)."""

    name = "reference with frames_budget"
    capabilities = {"video_rule": "frames_budget"}

    def preprocess(self, media, *budgets):
        return rpx.preprocess(media, *budgets, video_rule="frames_budget")


@pytest.mark.conformance
@pytest.mark.stage("preprocess")
def test_declared_video_rule_is_checked_and_recorded(request):
    """A target declaring frames_budget passes against that rule, fails against per_frame, and the run records
    the difference."""
    target = FramesBudgetReference()
    video = np.random.default_rng(1).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    check_preprocess(target.preprocess, declared(target), [video])
    recorded = [v for k, v in request.node.user_properties if k == "vitspec_difference"]
    assert recorded == [
        "preprocess: video_rule frames_budget: videos sized with the frames counted in the pixel budget (VIDEO-RESIZE)"
    ], recorded
    with pytest.raises(AssertionError, match="differ from the reference|shape"):
        check_preprocess(target.preprocess, Capabilities(), [video])


@pytest.mark.modules
@pytest.mark.stage("preprocess")
@pytest.mark.parametrize("rule", ["per_frame", "frames_budget"])
@given(
    st.integers(2, 5),
    st.integers(1, 3000),
    st.integers(1, 3000),
    st.sampled_from([3136, 100352]),
    st.sampled_from([602112, 12845056]),
)
def test_impl_video_size_equals_reference(rule, frames, h, w, lo, hi):
    """impl's own video_size formula against the reference's, both rules (ratio > 200 raises in both)."""
    import vitspec.impl.resize as ir

    try:  # the rule (spec/validate.py, applied by preprocess_inputs), then the reference's math
        video_size_inputs(frames, h, w, 28, lo, hi, 2, rule, "hf")
        expected = rpx.video_size(frames, h, w, 28, lo, hi, 2, rule)
    except ValueError as e:
        with pytest.raises(ValueError, match="aspect ratio"):
            ir.video_size(frames, h, w, 28, lo, hi, 2, rule)
        assert "aspect ratio" in str(e)
        return
    assert ir.video_size(frames, h, w, 28, lo, hi, 2, rule) == expected, (frames, h, w, lo, hi, rule)


@pytest.mark.stage("patchify")
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))
def test_patchify_equals_reference_on_arange(stage, default_geometry, t, bh, bw):
    frames = np.arange(2 * t * 3 * 28 * bh * 28 * bw, dtype=np.float64).reshape(2 * t, 3, 28 * bh, 28 * bw)
    values, grid = stage("patchify")(frames)
    ref_values, ref_grid = ref_patchify(frames)
    assert_index_equal("patchify", np.asarray(to_numpy(grid)), ref_grid, frames=frames.shape)
    assert np.array_equal(to_numpy(values), ref_values), f"patchify{frames.shape}: rows differ from the reference"


def check_ratio_rule(smart_resize) -> None:
    """RESIZE-RATIO: aspect ratio exactly 200 passes, anything above raises ValueError naming the ratio."""
    for h, w in [(1, 200), (200, 1), (3, 600)]:
        smart_resize(h, w, F, 3136, 12845056)
    for h, w in [(1, 201), (2, 401), (601, 3)]:
        with pytest.raises(ValueError, match="aspect ratio"):
            smart_resize(h, w, F, 3136, 12845056)


@pytest.mark.stage("smart_resize")
def test_smart_resize_ratio_rule(stage):
    check_ratio_rule(stage("smart_resize"))


def ratio_checked_with_ge(h, w, factor, lo, hi):
    """Planted bug: ratio 200 itself refused (>= instead of >)."""
    if max(h, w) >= 200 * min(h, w):
        raise ValueError("absolute aspect ratio must be smaller than 200")
    return rr.smart_resize(h, w, factor, lo, hi)


def ratio_unchecked(h, w, factor, lo, hi):
    """Planted bug: no ratio check at all."""
    return rr.smart_resize(h, w, factor, lo, hi) if max(h, w) <= 200 * min(h, w) else (F, F)


@pytest.mark.negative_control
@pytest.mark.stage("smart_resize")
@pytest.mark.parametrize("planted", [ratio_checked_with_ge, ratio_unchecked])
def test_ratio_rule_rejects(planted):
    with pytest.raises((AssertionError, ValueError, pytest.fail.Exception)):
        check_ratio_rule(planted)
