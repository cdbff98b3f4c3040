"""Pixels to pixel_values (SPEC-NOTES §1.2, §1.3): the reference against HF's PIL image processor, Pillow and
qwen-vl-utils; video frame padding; RGBA policies; the impl module against the reference."""

from __future__ import annotations

import contextlib
import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import event, example, given, settings, strategies as st

import vitspec.impl.pixels as ipx
import vitspec.impl.resize as ir
import vitspec.reference.pixels as rpx
import vitspec.reference.resize as rr
from vitspec.reference.patchify import unpatchify
from vitspec.spec.configs import PREPROCESSOR
from vitspec.spec.validate import (
    normalize_inputs,
    preprocess_inputs,
    rescale_inputs,
    temporal_frames_inputs,
    to_rgb_inputs,
)
from vitspec.tests import upstream
from vitspec.tests.checks import to_numpy
from vitspec.tests.images import ATOL, PATTERNS, check_close, installed_pass_order, make_image

MEAN, STD = PREPROCESSOR["image_mean"], PREPROCESSOR["image_std"]
PIXEL_LIMITS = {"released": (3136, 12845056), "small max": (3136, 28 * 28 * 16)}
pytestmark = [
    pytest.mark.stage("preprocess"),
    pytest.mark.modules,
]  # vitspec.impl.pixels and vitspec.reference.pixels directly


@st.composite
def image_batches(draw, max_images: int = 3, max_side: int = 160):
    """A list of (h, w, pattern, seed) with aspect ratio <= 200 by construction."""
    items = []
    for _ in range(draw(st.integers(1, max_images))):
        short = draw(st.integers(1, 60))
        long = draw(st.integers(short, min(200 * short, max_side)))
        h, w = (short, long) if draw(st.booleans()) else (long, short)
        items.append((h, w, draw(st.sampled_from(PATTERNS)), draw(st.integers(0, 2**32 - 1))))
    sizes = {(h, w) for h, w, _, _ in items}
    event(f"batch of {len(items)}" + (", different sizes" if len(sizes) > 1 else ""))
    return items


@functools.cache
def hf_processor(min_pixels: int, max_pixels: int):
    return upstream.hf_pil_processor(min_pixels=min_pixels, max_pixels=max_pixels)


def hf_preprocess(images, min_pixels=3136, max_pixels=12845056):
    """HF's Qwen2VLImageProcessorPil on PIL images (no channel-layout guessing for 3-pixel-wide images)."""
    Image = upstream.pillow_image()
    out = hf_processor(min_pixels, max_pixels)(images=[Image.fromarray(x) for x in images])
    return out["pixel_values"], out["image_grid_thw"]


def reference_preprocess(images, **kwargs):
    """The reference with the installed Pillow's pass order (Pillow <= 12 always resamples horizontally first)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rpx, "resize", functools.partial(rr.resize, pass_order=installed_pass_order()))
        return rpx.preprocess(images, **kwargs)


def check_equals_hf(preprocess, images, min_pixels, max_pixels, atol) -> None:
    values, grid = preprocess(images, image_min_pixels=min_pixels, image_max_pixels=max_pixels)
    hf_values, hf_grid = hf_preprocess(images, min_pixels, max_pixels)
    assert to_numpy(grid).tolist() == hf_grid.tolist(), f"grid_thw {to_numpy(grid).tolist()} != HF's {hf_grid.tolist()}"
    check_close(values, hf_values, atol, "pixel_values vs HF")


# --- the reference against HF's PIL image processor ----------------------------------------------------------


@pytest.mark.conformance
@settings(deadline=None)
@given(batch=image_batches(), limits=st.sampled_from(sorted(PIXEL_LIMITS)))
@example(batch=[(3, 600, "random", 1), (37, 53, "checkerboard", 2)], limits="released")
@example(batch=[(200, 1, "gradient", 3)], limits="small max")
def test_reference_preprocess_equals_hf_pil_processor(batch, limits):
    images = [make_image(seed, h, w, pattern) for h, w, pattern, seed in batch]
    check_equals_hf(reference_preprocess, images, *PIXEL_LIMITS[limits], ATOL["float32"])


@pytest.mark.conformance
def test_reference_preprocess_full_hd_equals_hf():
    image = make_image(0, 1080, 1920, "random")
    values, grid = reference_preprocess([image])
    assert grid.tolist() == [[1, 78, 138]] and values.shape == (78 * 138, 1176)
    hf_values, hf_grid = hf_preprocess([image])
    assert hf_grid.tolist() == grid.tolist()
    check_close(hf_values, values, ATOL["float32"], "HF pixel_values")


def bgr_mean(images, **kw):
    """Planted bug: the CLIP mean applied in BGR order."""
    values, grid = rpx.preprocess(images, **kw)
    rows = values.reshape(len(values), 3, -1) * np.array(STD)[:, None] + np.array(MEAN)[:, None]
    return ((rows - np.array(MEAN[::-1])[:, None]) / np.array(STD)[:, None]).reshape(values.shape), grid


def float16_normalize(images, **kw):
    """Planted bug: normalized values stored in float16."""
    values, grid = rpx.preprocess(images, **kw)
    return values.astype(np.float16), grid


def one_size_for_all(images, **kw):
    """Planted bug: every image of the batch resized to the first image's size."""
    size = images[0].shape[:2]
    return rpx.preprocess([rpx.resize(x, *size) if x.shape[:2] != size else x for x in images], **kw)


@pytest.mark.negative_control
@pytest.mark.parametrize("planted", [bgr_mean, float16_normalize, one_size_for_all])
def test_hf_check_rejects_planted_bug(planted):
    images = [make_image(1, 40, 60, "random"), make_image(2, 90, 30, "gradient")]
    check_equals_hf(reference_preprocess, images, 3136, 12845056, ATOL["float32"])
    with pytest.raises(AssertionError):
        check_equals_hf(planted, images, 3136, 12845056, ATOL["float32"])


# --- temporal pairing and video frame padding ----------------------------------------------------------------


def check_video_padding(preprocess, frames: int) -> None:
    """PIXELS-TEMPORAL: a video of distinct frames: grid_t = ceil(F / 2), each pair holds consecutive frames, and an odd count
    is completed with the LAST frame repeated."""
    video = np.stack([make_image(f, 30, 45, "random") for f in range(frames)])
    values, grid = preprocess([video])
    ((t, gh, gw),) = to_numpy(grid).tolist()
    assert t == math.ceil(frames / 2), f"grid_t {t} for {frames} frames"
    got = unpatchify(to_numpy(values), [t, gh, gw])  # (2t, C, H, W)
    expected = [rpx.preprocess([video[min(f, frames - 1)]])[0] for f in range(2 * t)]
    for f, rows in enumerate(expected):
        still = unpatchify(rows, [1, gh, gw])[0]
        assert np.abs(got[f] - still).max() <= ATOL["float32"], f"frame slot {f} of {frames} frames is wrong"


@pytest.mark.conformance
@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5])
def test_reference_video_padding_repeats_last_frame(frames):
    check_video_padding(rpx.preprocess, frames)


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_impl_video_padding_repeats_last_frame(frames):
    check_video_padding(ipx.preprocess, frames)


@pytest.mark.conformance
@pytest.mark.parametrize("T", [1, 2, 3])
@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5])
def test_temporal_frames_pads_with_the_last_frame(frames, T):
    out = rpx.temporal_frames(np.arange(frames), T)
    assert out.tolist() == list(range(frames)) + [frames - 1] * (-frames % T)


def pad_with_first(images, **kw):
    """Planted bug: an odd video completed with its first frame."""
    return rpx.preprocess([np.concatenate([x, x[:1]]) if x.ndim == 4 and len(x) % 2 else x for x in images], **kw)


def drop_odd_frame(images, **kw):
    """Planted bug: grid_t = F // 2 (the unpaired last frame dropped)."""
    return rpx.preprocess([x[: len(x) // 2 * 2] if x.ndim == 4 and len(x) > 1 else x for x in images], **kw)


@pytest.mark.negative_control
@pytest.mark.parametrize("planted", [pad_with_first, drop_odd_frame])
def test_video_check_rejects_planted_bug(planted):
    check_video_padding(rpx.preprocess, 3)
    with pytest.raises(AssertionError):
        check_video_padding(planted, 3)


# --- RGB conversion policies --------------------------------------------------------------------------------


def every_value_alpha_pair() -> np.ndarray:
    """A 256x256 RGBA image holding every (value, alpha) pair in R, and other values in G and B."""
    v, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    return np.stack([v, 255 - v, (7 * v + 3) % 256, a], axis=-1).astype(np.uint8)


def check_policy(convert, oracle, image) -> None:
    got, expected = np.asarray(convert(image)), np.asarray(oracle(image))
    assert got.shape == expected.shape and np.array_equal(got, expected), (
        f"{int((got != expected).sum())} values differ from the upstream conversion"
    )


def qvu_to_rgb(image):
    return np.asarray(upstream.qvu("to_rgb")(upstream.pillow_image().fromarray(image, "RGBA")))


def hf_convert_pil(image):
    convert = upstream.require("transformers.image_transforms").convert_to_rgb
    return convert(upstream.pillow_image().fromarray(image, "RGBA"), return_numpy=True)


def hf_convert_numpy(image):
    convert = upstream.require("transformers.image_transforms").convert_to_rgb
    return convert(image, return_numpy=True, input_data_format="channels_last")


@pytest.mark.conformance
@pytest.mark.parametrize(
    "oracle",
    [qvu_to_rgb, hf_convert_pil, hf_convert_numpy],
    ids=["qwen-vl-utils paste", "HF 5.x PIL alpha_composite", "HF 5.x numpy"],
)
def test_white_policy_equals_upstream_for_every_value_alpha_pair(oracle):
    check_policy(lambda x: rpx.to_rgb(x, "white"), oracle, every_value_alpha_pair())


@pytest.mark.conformance
def test_drop_policy_equals_pillow_convert_and_gray_is_replicated():
    Image = upstream.pillow_image()
    rgba = every_value_alpha_pair()
    check_policy(lambda x: rpx.to_rgb(x, "drop"), lambda x: np.asarray(Image.fromarray(x, "RGBA").convert("RGB")), rgba)
    gray = rgba[:, :, 0]
    check_policy(rpx.to_rgb, lambda x: np.asarray(Image.fromarray(x, "L").convert("RGB")), gray)


@pytest.mark.conformance
def test_hf_processor_composites_rgba_over_white():
    """HF 5.x's processor composites RGBA over white (the SPEC-NOTES §1.2 'drops alpha' describes older HF)."""
    rgba = make_image(3, 60, 80, "random")
    rgba = np.concatenate([rgba, make_image(4, 60, 80, "gradient")[:, :, :1]], axis=2)
    Image = upstream.pillow_image()
    out = hf_processor(3136, 12845056)(images=[Image.fromarray(rgba, "RGBA")])
    values, grid = reference_preprocess([rpx.to_rgb(rgba, "white")])
    assert out["image_grid_thw"].tolist() == grid.tolist()
    check_close(out["pixel_values"], values, ATOL["float32"], "HF on RGBA")


@pytest.mark.negative_control
def test_policy_check_rejects_the_other_policy():
    rgba = every_value_alpha_pair()
    with pytest.raises(AssertionError):
        check_policy(lambda x: rpx.to_rgb(x, "drop"), qvu_to_rgb, rgba)


# --- the impl against the reference -------------------------------------------------------------------------


@st.composite
def mixed_batches(draw):
    """Images and short videos (1..5 frames) of different sizes."""
    batch = draw(image_batches(max_images=3, max_side=120))
    frames = [draw(st.sampled_from([0, 0, 1, 2, 3, 5])) for _ in batch]
    if any(frames):
        event("with a video")
    return [(h, w, pattern, seed, f) for (h, w, pattern, seed), f in zip(batch, frames)]


def make_item(h, w, pattern, seed, frames):
    if frames == 0:
        return make_image(seed, h, w, pattern)
    return np.stack([make_image(seed + f, h, w, pattern) for f in range(frames)])


@contextlib.contextmanager
def cpu_path(path: str):
    """impl's CPU preprocessing by the compiled kernels ("native", the default where built) or without them
    ("fallback": Pillow's passes and NumPy)."""
    saved = ipx.native, ir.native
    if path == "native":
        assert ipx.native is not None, "vitspec.impl._resize_native is missing: `pip install -e .` compiles it"
    else:
        ipx.native = ir.native = None
    try:
        yield
    finally:
        ipx.native, ir.native = saved


@pytest.mark.parametrize("path", ["native", "fallback"])
@settings(deadline=None)
@given(
    batch=mixed_batches(),
    limits=st.sampled_from(sorted(PIXEL_LIMITS)),
    as_tensor=st.booleans(),
    T=st.sampled_from([2, 2, 1, 3]),
)
@example(batch=[(3, 600, "random", 1, 0), (37, 53, "checkerboard", 2, 3)], limits="released", as_tensor=False, T=2)
@example(batch=[(40, 30, "random", 1, 5), (30, 40, "gradient", 2, 0)], limits="released", as_tensor=False, T=3)
def test_impl_preprocess_equals_reference(path, batch, limits, as_tensor, T):
    items = [make_item(*spec) for spec in batch]
    expected, expected_grid = rpx.preprocess(items, *PIXEL_LIMITS[limits], temporal_patch_size=T)
    with cpu_path(path):
        values, grid = ipx.preprocess(
            [torch.from_numpy(x) for x in items] if as_tensor else items, *PIXEL_LIMITS[limits], temporal_patch_size=T
        )
    assert isinstance(values, torch.Tensor) and values.dtype == torch.float32 and grid.dtype == torch.int64
    assert grid.tolist() == expected_grid.tolist()
    check_close(values, expected, ATOL["float32"], "impl pixel_values")


@pytest.mark.negative_control
def test_impl_preprocess_check_rejects_wrong_frame_in_slot(monkeypatch):
    """A kernel that fills every temporal slot from the group's first frame is caught by the reference comparison."""
    video = np.stack([make_image(s, 56, 56, "random") for s in range(2)])
    expected, _ = rpx.preprocess([video])
    check_close(ipx.preprocess([video])[0], expected, ATOL["float32"], "impl")
    original = ipx.native_pixel_values

    def first_frame_only(image, frames, *args):
        image = image.clone()
        image[:, :, 3:6] = image[:, :, 0:3]
        return original(image, frames, *args)

    monkeypatch.setattr(ipx, "native_pixel_values", first_frame_only)
    with pytest.raises(AssertionError):
        check_close(ipx.preprocess([video])[0], expected, ATOL["float32"], "planted")


def test_impl_preprocess_full_hd_and_float64_output():
    image = make_image(0, 1080, 1920, "random")
    expected, grid = rpx.preprocess([image])
    values, got_grid = ipx.preprocess([image])
    assert got_grid.tolist() == grid.tolist()
    check_close(values, expected, ATOL["float32"], "impl float32")
    small = [make_image(1, 50, 70, "gradient"), make_image(2, 33, 90, "random")]
    values64, _ = ipx.preprocess(small, dtype=torch.float64)
    assert values64.dtype == torch.float64
    check_close(values64, rpx.preprocess(small)[0], ATOL["float64"], "impl float64")


# --- errors -------------------------------------------------------------------------------------------------


def validated_reference_preprocess(media, **kwargs):
    """The reference's preprocess with its input rules (spec/validate.py preprocess_inputs) applied first, as
    reference.TARGET applies them; this table also varies patch_size and variant, which the target's method fixes."""
    preprocess_inputs(media, **kwargs)
    return rpx.preprocess(media, **kwargs)


def validated_impl_preprocess(media, **kwargs):
    """impl's preprocess with the same rules applied first, as impl.TARGET applies them."""
    preprocess_inputs(media, **kwargs)
    return ipx.preprocess(media, **kwargs)


@pytest.mark.parametrize(
    "preprocess", [validated_reference_preprocess, validated_impl_preprocess], ids=["reference", "impl"]
)
@pytest.mark.parametrize(
    "images, kwargs, error",
    [
        ([np.zeros((28, 28, 3), np.float32)], {}, TypeError),  # not uint8
        ([np.zeros((28, 28, 4), np.uint8)], {}, ValueError),  # RGBA: choose a to_rgb policy first
        ([np.zeros((28, 28), np.uint8)], {}, ValueError),
        ([np.zeros((0, 28, 28, 3), np.uint8)], {}, ValueError),  # a video without frames
        ([], {}, ValueError),
        (np.zeros((28, 28, 3), np.uint8), {}, TypeError),  # an array, not a list of them
        ([np.zeros((28, 28, 3), np.uint8)], {"image_min_pixels": 3136.0}, TypeError),
        ([np.zeros((28, 28, 3), np.uint8)], {"patch_size": "14"}, TypeError),
        (
            [np.zeros((10, 2000, 3), np.uint8)],
            {"image_max_pixels": 40000, "variant": "qvu"},
            ValueError,
        ),  # QVU side of 0
    ],
)
def test_preprocess_errors(preprocess, images, kwargs, error):
    with pytest.raises(error):
        preprocess(images, **kwargs)


MEAN_STD = (PREPROCESSOR["image_mean"], PREPROCESSOR["image_std"])


@pytest.mark.conformance
@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: rescale_inputs(np.array([1.0, np.nan]), 1 / 255), ValueError),
        (lambda: rescale_inputs(np.array([1.0]), 0), ValueError),
        (lambda: normalize_inputs(np.array([[np.inf, 0.0, 0.0]]), *MEAN_STD), ValueError),
        (lambda: normalize_inputs(np.zeros((2, 4)), *MEAN_STD), ValueError),  # 4 channels, 3 means
        (lambda: normalize_inputs(np.zeros((2, 3)), MEAN_STD[0], (1.0, 0.0, 1.0)), ValueError),
        (lambda: to_rgb_inputs(np.zeros((2, 2, 4), np.uint8), "black"), ValueError),
        (lambda: to_rgb_inputs(np.zeros((2, 2, 4), np.float64), "drop"), TypeError),
        (lambda: to_rgb_inputs(np.zeros((2, 2, 5), np.uint8), "drop"), ValueError),
        (lambda: temporal_frames_inputs(np.zeros((0, 2)), 2), ValueError),
    ],
)
def test_pixel_step_rules(call, error):
    """The pixel steps' input rules (spec/validate.py); reference/pixels.py's steps are the math only."""
    with pytest.raises(error):
        call()


@pytest.mark.conformance
@pytest.mark.parametrize(
    "call",
    [
        lambda: rescale_inputs(np.array([0, 255], np.uint8), 1 / 255),
        lambda: normalize_inputs(np.zeros((2, 3)), *MEAN_STD),
        lambda: to_rgb_inputs(np.zeros((2, 2, 4), np.uint8), "white"),
        lambda: to_rgb_inputs(np.zeros((2, 2), np.uint8), "drop"),
        lambda: temporal_frames_inputs(np.zeros((1, 2)), 2),
    ],
)
def test_pixel_step_rules_accept_valid_input(call):
    """Negative control of test_pixel_step_rules: the rules accept the steps' valid inputs."""
    assert call() is None


@pytest.mark.conformance
def test_rescale_then_normalize_is_the_clip_affine_map():
    x = np.array([[0, 128, 255]], dtype=np.uint8).repeat(3, axis=0).T  # (3 pixels, 3 channels)
    got = rpx.normalize(rpx.rescale(x))
    expected = (x / 255.0 - np.array(MEAN)) / np.array(STD)
    assert np.allclose(got, expected, rtol=0, atol=1e-15)
    assert got[0].tolist() == pytest.approx([-m / s for m, s in zip(MEAN, STD)], abs=1e-15)
