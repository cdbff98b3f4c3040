"""smart_resize (SPEC-NOTES §1.1) and the bicubic resize (§1.2) against Pillow, HF transformers and qwen-vl-utils.

The reference is checked bit-exactly against the installed upstream code; the impl module is checked
bit-exactly against the reference. Pixel data comes from a seeded NumPy generator; Hypothesis draws shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import event, example, given, settings, strategies as st

import vitspec.impl.resize as ir
import vitspec.reference.resize as rr
from vitspec.reference import TARGET as REFERENCE
from vitspec.tests import upstream
from vitspec.tests.images import PATTERNS, installed_pass_order, make_image

REL = dict(min_pixels=3136, max_pixels=12845056)  # preprocessor_config.json
HF_MAX = 28 * 28 * 1280  # HF's class default max_pixels


def pillow_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    Image = upstream.pillow_image()
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


@st.composite
def resize_cases(draw):
    """(input h, w, output h, w, pattern, seed) over the size classes where resamplers go wrong."""
    side = lambda lo, hi: draw(st.integers(lo, hi))  # noqa: E731
    kind = draw(
        st.sampled_from(["upscale", "downscale", "mixed", "one pixel", "extreme aspect", "identity", "one axis"])
    )
    h, w = side(1, 80), side(1, 80)
    if kind == "upscale":
        oh, ow = side(h, 120), side(w, 120)
    elif kind == "downscale":
        h, w = side(20, 120), side(20, 120)
        oh, ow = side(1, h), side(1, w)
    elif kind == "mixed":
        oh, ow = side(1, 120), side(1, 120)
    elif kind == "one pixel":
        h, w, oh, ow = draw(st.permutations([1, side(1, 60), side(1, 60), side(1, 60)]))
    elif kind == "extreme aspect":
        h, w, oh, ow = 1, side(150, 300), side(1, 28), side(28, 300)
        if draw(st.booleans()):
            h, w, oh, ow = w, h, ow, oh
    elif kind == "identity":
        oh, ow = h, w
    else:
        oh, ow = (h, side(1, 120)) if draw(st.booleans()) else (side(1, 120), w)
    pattern = draw(st.sampled_from(PATTERNS))
    event(kind)
    event(pattern)
    event("vertical pass first" if ir.vertical_pass_first(h, w, oh, ow) else "horizontal pass first")
    return h, w, oh, ow, pattern, draw(st.integers(0, 2**32 - 1))


def check_matches_pillow(resize, image: np.ndarray, height: int, width: int) -> None:
    """PIXELS-PILLOW: resize(image, height, width) equals Pillow's BICUBIC bit for bit (raises AssertionError otherwise)."""
    expected = pillow_resize(image, height, width)
    got = np.asarray(resize(image, height, width))
    assert got.shape == expected.shape, f"shape {got.shape} != Pillow's {expected.shape}"
    assert got.dtype == np.uint8, f"dtype {got.dtype}"
    diff = np.argwhere(got != expected)
    assert diff.size == 0, (
        f"{len(diff)} values differ from Pillow, first at {tuple(diff[0])}: "
        f"{got[tuple(diff[0])]} != {expected[tuple(diff[0])]}"
    )


def reference_resize(image, height, width):
    return rr.resize(image, height, width, pass_order=installed_pass_order())


# --- bicubic resize -----------------------------------------------------------------------------------------


@pytest.mark.conformance
@settings(deadline=None)
@given(case=resize_cases())
@example(case=(93, 13, 31, 7, "random", 1))  # Pillow 13 runs the vertical pass first here
@example(case=(1, 1, 28, 28, "random", 2))
@example(case=(28, 28, 28, 28, "checkerboard", 3))
@example(case=(300, 2, 28, 28, "checkerboard", 4))
@example(case=(1, 280, 28, 280, "gradient", 5))
def test_reference_resize_equals_pillow(case):
    h, w, oh, ow, pattern, seed = case
    check_matches_pillow(reference_resize, make_image(seed, h, w, pattern), oh, ow)


@pytest.mark.conformance
def test_reference_resize_equals_pillow_full_hd():
    """The worked value 1080x1920 -> 1092x1932 (SPEC-NOTES §1.1) on a natural-looking mix of patterns."""
    image = make_image(0, 1080, 1920, "gradient")
    image[200:700, 300:1500] = make_image(1, 500, 1200, "random")
    image[800:, :900] = make_image(2, 280, 900, "checkerboard")
    check_matches_pillow(reference_resize, image, 1092, 1932)


@pytest.mark.conformance
def test_pass_order_is_a_recorded_pillow_version_difference():
    """Pillow <= 12 always ran the horizontal pass first; Pillow 13 runs the vertical one first when the height
    shrinks by more than twice the width's shrink. The two orders give different pixels."""
    image = make_image(1, 93, 13, "random")
    assert rr.vertical_pass_first(93, 13, 31, 7) and not rr.vertical_pass_first(93, 13, 88, 7)
    a = rr.resize(image, 31, 7, pass_order="pillow13")
    b = rr.resize(image, 31, 7, pass_order="horizontal_first")
    assert (a != b).any() and np.abs(a.astype(int) - b).max() <= 3


# impl's CPU resamplers, each forced in turn: the compiled kernel (the default where built), Pillow's own passes
# (where the compiled kernel is missing), the torch matmuls (CUDA's path, also run on the CPU). The target's resize
# runs the default only.


@pytest.mark.modules
@pytest.mark.stage("resize")
@pytest.mark.parametrize("path", ir.PATHS)
@settings(deadline=None)
@given(case=resize_cases())
@example(case=(93, 13, 31, 7, "random", 1))
@example(case=(400, 40, 3, 30, "checkerboard", 5))  # 133x downscale: the float64 matmul
@example(case=(37, 3000, 30, 28, "checkerboard", 6))  # 107x horizontal downscale: hundreds of taps per output
def test_impl_resize_equals_reference(path, case):
    h, w, oh, ow, pattern, seed = case
    image = make_image(seed, h, w, pattern)
    got = ir.resize(image, oh, ow, path=path)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.uint8
    assert np.array_equal(got.numpy(), rr.resize(image, oh, ow))


@pytest.mark.modules
@pytest.mark.stage("resize")
@pytest.mark.parametrize("path", ir.PATHS)
def test_impl_resize_full_hd_and_both_matmul_paths(path):
    image = make_image(0, 1080, 1920, "random")
    got = ir.resize(torch.from_numpy(image), 1092, 1932, path=path)
    assert np.array_equal(got.numpy(), rr.resize(image, 1092, 1932))
    assert ir.axis_plan(1920, 1932).fits_float32 and not ir.axis_plan(4000, 28).fits_float32
    tall = make_image(1, 4000, 30, "checkerboard")
    assert np.array_equal(ir.resize(tall, 28, 28, path=path).numpy(), rr.resize(tall, 28, 28))


def test_compiled_resampler_is_built_and_chosen():
    """pip install builds impl/resize_native.c; without it the CPU falls back to Pillow (slower, same pixels)."""
    assert ir.NATIVE, "vitspec.impl._resize_native is missing: the C compiler step of `pip install -e .` did not run"
    assert ir.resize_path(torch.zeros((5, 5, 3), dtype=torch.uint8), 28, 28) == "native"


def test_forced_path_errors():
    image = torch.zeros((5, 5, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match="path must be one of"):
        ir.resize(image, 28, 28, path="opencv")
    with pytest.raises(ValueError, match="path 'pillow' needs"):
        ir.resize_planar(torch.zeros((5, 5, 4), dtype=torch.uint8), 28, 28, path="pillow")


@pytest.mark.negative_control
@pytest.mark.parametrize("path", ["native", "pillow"])
def test_planted_weight_table_is_caught(path, monkeypatch):
    """A one-step error in a single fixed-point weight (the compiled kernel and Pillow's probe both read the
    tables) changes pixels that the reference comparison sees."""
    image = make_image(3, 93, 13, "random")
    assert np.array_equal(ir.resize(image, 31, 7, path=path).numpy(), rr.resize(image, 31, 7))
    original = ir.pillow_weights

    def off_by_one(in_size, out_size):
        first, w = original(in_size, out_size)
        w = w.copy()
        w[len(w) // 2, 1] += 1 << 12
        return first, w

    monkeypatch.setattr(ir, "pillow_weights", off_by_one)
    if path == "pillow":  # the probe refuses Pillow once the tables differ from Pillow's own
        assert not ir.pillow_usable(torch.from_numpy(image), 93, 13, 31, 7)
        return
    assert not np.array_equal(ir.resize(image, 31, 7, path=path).numpy(), rr.resize(image, 31, 7))


@pytest.mark.parametrize("resize", [REFERENCE.resize, ir.resize], ids=["reference", "impl"])  # reference as a target
@pytest.mark.parametrize(
    "args, error",
    [
        ((np.zeros((4, 4, 3), np.float32), 8, 8), TypeError),  # not uint8
        ((np.zeros((4, 4, 4), np.uint8), 8, 8), ValueError),  # RGBA: convert first
        ((np.zeros((4, 4), np.uint8), 8, 8), ValueError),
        ((np.zeros((0, 4, 3), np.uint8), 8, 8), ValueError),
        ((np.zeros((4, 4, 3), np.uint8), 8.0, 8), TypeError),
        ((np.zeros((4, 4, 3), np.uint8), 8, 0), ValueError),
    ],
)
def test_resize_errors(resize, args, error):
    with pytest.raises(error):
        resize(*args)


# Negative controls: the Pillow check rejects each planted resampling bug.


def float_two_pass(image, height, width):
    """Planted bug: both passes in float, one rounding at the end (no 8-bit clip in between)."""
    first_h, wh = rr.bicubic_weights(image.shape[0], height)
    first_w, ww = rr.bicubic_weights(image.shape[1], width)

    def dense(first, w, n):
        m = np.zeros((len(first), n))
        for i, (f, row) in enumerate(zip(first, w)):
            m[i, f : f + len(row)] = row[: max(0, min(len(row), n - f))]
        return m / 2**rr.PRECISION_BITS

    out = np.einsum(
        "yi,xj,ijc->yxc",
        dense(first_h, wh, image.shape[0]),
        dense(first_w, ww, image.shape[1]),
        image.astype(np.float64),
    )
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


@pytest.mark.negative_control
@pytest.mark.parametrize("planted", ["a = -0.75", "no intermediate clip", "other pass order", "height/width swapped"])
def test_pillow_check_rejects_planted_bug(planted, monkeypatch):
    image, size = make_image(7, 93, 13, "checkerboard"), (31, 7)
    check_matches_pillow(reference_resize, image, *size)
    other = "horizontal_first" if installed_pass_order() == "pillow13" else "pillow13"
    bug = {
        "a = -0.75": reference_resize,
        "no intermediate clip": float_two_pass,
        "other pass order": lambda im, h, w: rr.resize(im, h, w, pass_order=other),
        "height/width swapped": lambda im, h, w: reference_resize(im, w, h),
    }[planted]
    if planted == "a = -0.75":
        monkeypatch.setattr(rr, "BICUBIC_A", -0.75)
    with pytest.raises(AssertionError):
        check_matches_pillow(bug, image, *size)


# --- smart_resize ---------------------------------------------------------------------------------------------

WORKED = [  # SPEC-NOTES §1.1 item 6
    ((1080, 1920), REL, (1092, 1932)),
    ((3000, 4000), REL, (2996, 4004)),
    ((512, 512), REL, (504, 504)),
    ((70, 70), REL, (56, 56)),
    ((20, 30), REL, (56, 84)),
    ((1080, 1920), dict(min_pixels=3136, max_pixels=HF_MAX), (728, 1316)),
    ((3000, 4000), dict(min_pixels=3136, max_pixels=HF_MAX), (840, 1148)),
]


@pytest.mark.conformance
@pytest.mark.parametrize("variant", ["hf", "qvu"])
@pytest.mark.parametrize("size, pixels, expected", WORKED)
def test_smart_resize_worked_values(size, pixels, expected, variant):
    assert rr.smart_resize(*size, 28, variant=variant, **pixels) == expected


def check_ties_to_even(smart_resize) -> None:
    """RESIZE-TIES: 70 -> 56, 98 -> 112, 42 -> 56 (Python round, ties to even), with the other side keeping both branches off."""
    for side, expected in [(70, 56), (98, 112), (42, 56), (126, 112), (154, 168)]:
        got = smart_resize(side, 280, 28, **REL)
        assert got == (expected, 280), f"{side} -> {got[0]}, expected {expected}"


@pytest.mark.conformance
def test_smart_resize_rounds_ties_to_even():
    check_ties_to_even(rr.smart_resize)


@pytest.mark.modules
@pytest.mark.stage("smart_resize")
def test_impl_smart_resize_rounds_ties_to_even():
    check_ties_to_even(ir.smart_resize)


@pytest.mark.negative_control
def test_ties_check_rejects_round_half_up():
    def half_up(h, w, factor, min_pixels, max_pixels):
        return int(h / factor + 0.5) * factor, int(w / factor + 0.5) * factor

    with pytest.raises(AssertionError):
        check_ties_to_even(half_up)


# the reference as a target: its input rules (spec/validate.py smart_resize_inputs) applied, then its math
@pytest.mark.parametrize("smart_resize", [REFERENCE.smart_resize, ir.smart_resize], ids=["reference", "impl"])
@pytest.mark.parametrize("variant", ["hf", "qvu"])
def test_aspect_ratio_200_passes_and_above_raises(smart_resize, variant):
    for h, w in [(1, 200), (200, 1), (2, 400), (28, 5600)]:
        smart_resize(h, w, variant=variant)
    for h, w in [(1, 201), (2, 401), (3, 601), (601, 3)]:  # 201, 200.5, 200.33...
        with pytest.raises(ValueError, match="aspect ratio"):
            smart_resize(h, w, variant=variant)


@pytest.mark.parametrize("smart_resize", [REFERENCE.smart_resize, ir.smart_resize], ids=["reference", "impl"])
@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(height=28.0, width=28), TypeError),
        (dict(height=28, width=True), TypeError),
        (dict(height=0, width=28), ValueError),
        (dict(height=28, width=28, factor=28.0), TypeError),
        (dict(height=28, width=28, max_pixels=1e6), TypeError),
        (dict(height=28, width=28, variant="vllm"), ValueError),
        (dict(height=28, width=28, min_pixels=5000, max_pixels=4000, variant="qvu"), ValueError),
    ],
)
def test_smart_resize_errors(smart_resize, kwargs, error):
    with pytest.raises(error):
        smart_resize(**kwargs)


@st.composite
def smart_resize_inputs(draw):
    """(h, w, min_pixels, max_pixels) with aspect ratio <= 200 by construction and max >= min."""
    short = draw(st.integers(1, 4000) | st.integers(1, 60))
    long = draw(st.integers(short, min(200 * short, 20000)))
    h, w = (short, long) if draw(st.booleans()) else (long, short)
    lo = draw(st.sampled_from([3136, 1]) | st.integers(1, 200_000))
    hi = draw(st.sampled_from([12845056, HF_MAX, lo]) | st.integers(lo, 20_000_000))
    rh, rw = round(h / 28) * 28, round(w / 28) * 28
    event("floor branch" if rh * rw > hi else "ceil branch" if rh * rw < lo else "rounding only")
    return h, w, lo, hi


FLOAT_CASES = [(19, 19, 3136, 12845056), (38, 38, 3136, 12845056), (3621, 3621, 3136, 12845056)]
"""Squares at the released limits (both perfect squares: 56**2 and 3584**2) where the exact value is an integer
and upstream's float sqrt and division land on the other side of it: 19x19 -> 84x84, 3621x3621 -> 3556x3556."""


@pytest.mark.conformance
@settings(deadline=None)
@given(args=smart_resize_inputs())
@example(args=FLOAT_CASES[0]).via("float rounding decides")
@example(args=FLOAT_CASES[2]).via("float rounding decides")
@example(args=(1, 200, 3136, 12845056)).via("recorded divergence")
@example(args=(10, 2000, 3136, 40000)).via("floor branch gives 0 in QVU")
def test_reference_hf_equals_transformers_smart_resize(args):
    h, w, lo, hi = args
    assert rr.smart_resize(h, w, 28, lo, hi, "hf") == upstream.hf_smart_resize()(h, w, 28, lo, hi)


@pytest.mark.conformance
@settings(deadline=None)
@given(args=smart_resize_inputs())
@example(args=FLOAT_CASES[0]).via("float rounding decides")
@example(args=(1, 200, 3136, 12845056)).via("recorded divergence")
@example(args=(10, 2000, 3136, 40000)).via("floor branch gives 0 in QVU")
def test_reference_qvu_equals_qwen_vl_utils_smart_resize(args):
    h, w, lo, hi = args
    assert rr.smart_resize(h, w, 28, lo, hi, "qvu") == upstream.qvu("smart_resize")(h, w, 28, lo, hi)


@pytest.mark.modules
@pytest.mark.stage("smart_resize")
@settings(deadline=None)
@given(args=smart_resize_inputs(), variant=st.sampled_from(["hf", "qvu"]))
@example(args=FLOAT_CASES[0], variant="hf")
@example(args=FLOAT_CASES[2], variant="qvu")
def test_impl_smart_resize_equals_reference(args, variant):
    assert ir.smart_resize(*args[:2], 28, *args[2:], variant) == rr.smart_resize(*args[:2], 28, *args[2:], variant)


@pytest.mark.conformance
def test_float_rounding_cases_are_pinned():
    """Upstream's float steps, not exact arithmetic, decide these sizes (the exact results are 56 and 3584)."""
    assert [rr.smart_resize(h, w, 28, lo, hi) for h, w, lo, hi in FLOAT_CASES] == [(84, 84), (84, 84), (3556, 3556)]


@pytest.mark.conformance
def test_recorded_divergence_hf_vs_qvu():
    """SPEC-NOTES §1.1 item 4: HF clamps the floor branch, QVU the first rounding."""
    hf, qvu = upstream.hf_smart_resize(), upstream.qvu("smart_resize")
    assert hf(1, 200, 28, **REL) == rr.smart_resize(1, 200, variant="hf") == (28, 812)
    assert qvu(1, 200, 28, **REL) == rr.smart_resize(1, 200, variant="qvu") == (28, 196)


@pytest.mark.conformance
def test_qvu_floor_branch_returns_zero():
    """The twice-reported QVU bug: a thin image with a small max_pixels gets a side of 0; HF clamps it to 28."""
    for h, w, lo, hi, expected in [(10, 2000, 3136, 40000, (0, 2828)), (2, 300, 3136, 8000, (0, 1092))]:
        assert upstream.qvu("smart_resize")(h, w, 28, lo, hi) == expected
        assert rr.smart_resize(h, w, 28, lo, hi, "qvu") == expected
        assert rr.smart_resize(h, w, 28, lo, hi, "hf")[0] == 28


@pytest.mark.conformance
def test_qvu_refuses_max_below_min_like_upstream():
    with pytest.raises(AssertionError):
        upstream.qvu("smart_resize")(100, 100, 28, 5000, 4000)
    with pytest.raises(ValueError, match="max_pixels"):
        REFERENCE.smart_resize(100, 100, 28, 5000, 4000, "qvu")  # the reference as a target: its input rules


def test_compiled_kernel_checks_its_buffers():
    """The C entry points refuse buffers that do not match the sizes given, and taps outside the input."""
    if ir.native is None:
        pytest.fail("vitspec.impl._resize_native is missing: `pip install -e .` compiles it")
    src, first, w = np.zeros((10, 4, 3), np.uint8), *ir.native_weights(10, 28)
    with pytest.raises(ValueError, match="dst must hold 336 bytes"):
        ir.native.resample_pass(src, np.zeros((27, 4, 3), np.uint8), 0, 10, 4, 28, 3, first, w, w.shape[1], 0, 28)
    with pytest.raises(ValueError, match="weights must hold"):
        ir.native.resample_pass(
            src, np.zeros((28, 4, 3), np.uint8), 0, 10, 4, 28, 3, first, w.astype(np.int64), w.shape[1], 0, 28
        )
    with pytest.raises(ValueError, match="0 <= lo <= hi <= the output rows"):
        ir.native.resample_pass(
            src,
            np.zeros((10, 28, 3), np.uint8),
            1,
            10,
            4,
            28,
            3,
            *ir.native_weights(4, 28),
            ir.native_weights(4, 28)[1].shape[1],
            0,
            11,
        )
    bad_first = first.copy()
    bad_first[-1] = 9  # its non-zero taps would read rows 10, 11, ...
    with pytest.raises(ValueError, match="reads past the input"):
        ir.native.resample_pass(src, np.zeros((28, 4, 3), np.uint8), 0, 10, 4, 28, 3, bad_first, w, w.shape[1], 0, 28)
    with pytest.raises(ValueError, match="lut must hold"):
        ir.native.to_pixel_values(
            np.zeros((28, 28, 3), np.uint8),
            np.zeros((4, 1176), np.float32),
            np.zeros((3, 255), np.float32),
            1,
            28,
            28,
            3,
            14,
            2,
            2,
            4,
            0,
            1,
        )
