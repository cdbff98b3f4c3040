"""smart_resize (SPEC-NOTES §1.1) and Pillow's bicubic resampling of uint8 images (§1.2).

The bicubic resize is written from the algorithm of Pillow's src/libImaging/Resample.c
(precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc,
ImagingResampleInner) as of Pillow 13: separable, per-output normalized weights rounded to fixed
point with 22 fractional bits, each pass rounded and clipped to 8 bits; the horizontal pass runs
first unless the height shrinks much more than the width.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from vitspec.spec.validate import positive_int

BICUBIC_A = -0.5  # Pillow's bicubic_filter constant
BICUBIC_SUPPORT = 2.0
PRECISION_BITS = 32 - 8 - 2  # Pillow Resample.c: 8 bits of output, 2 bits of headroom in an int32


def smart_resize(height, width, factor=28, min_pixels=3136, max_pixels=12845056, variant="hf"):
    """§1.1: round each side to a multiple of factor (ties to even), then rescale into [min_pixels, max_pixels].

    variant "hf": transformers >= 4.57 (floor branch clamped to >= factor, first rounding not clamped).
    variant "qvu": qwen-vl-utils 0.0.14 (first rounding clamped, floor branch not clamped: may give 0).
    The beta branches use float64 math.sqrt and float division exactly as upstream does: upstream's
    float rounding decides the result whenever the exact value is an integer (e.g. 19x19 -> 84x84).
    The math only: the input rules (spec/validate.py smart_resize_inputs) are applied by reference.TARGET.
    """
    h, w, f, lo, hi = (int(v) for v in (height, width, factor, min_pixels, max_pixels))
    # Python's round on the exact quotient: ties go to the even multiple (70 -> 56, 98 -> 112).
    h_bar, w_bar = round(Fraction(h, f)) * f, round(Fraction(w, f)) * f
    if variant == "qvu":
        h_bar, w_bar = max(f, h_bar), max(f, w_bar)
    if h_bar * w_bar > hi:
        beta = math.sqrt(h * w / hi)
        h_bar, w_bar = math.floor(h / beta / f) * f, math.floor(w / beta / f) * f
        if variant == "hf":
            h_bar, w_bar = max(f, h_bar), max(f, w_bar)
    elif h_bar * w_bar < lo:
        beta = math.sqrt(lo / (h * w))
        h_bar, w_bar = math.ceil(h * beta / f) * f, math.ceil(w * beta / f) * f
    return h_bar, w_bar


def bicubic_kernel(x: float) -> float:
    """Pillow's bicubic_filter: the cubic convolution kernel with a = -0.5 and support 2."""
    x = abs(x)
    if x < 1.0:
        return ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * BICUBIC_A
    return 0.0


def bicubic_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's per-axis fixed-point weights: (first, weights) with first int64 (out_size,) and weights
    int64 (out_size, taps); output i = sum_k weights[i, k] * input[first[i] + k] (zero-padded taps).

    Output sample i is centred at (i + 0.5) * scale in input coordinates; the kernel is stretched by
    max(scale, 1) when downscaling; taps cover round(center -/+ support) clamped to the image; the
    float weights are divided by their sum, then rounded half away from zero to 22 fractional bits.
    """
    in_size, out_size = positive_int("in_size", in_size), positive_int("out_size", out_size)
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filterscale
    first = np.zeros(out_size, dtype=np.int64)
    weights = np.zeros((out_size, int(math.ceil(support)) * 2 + 1), dtype=np.int64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        start = max(int(center - support + 0.5), 0)  # C's (int) cast truncates toward zero
        stop = min(int(center + support + 0.5), in_size)
        taps = [bicubic_kernel((j - center + 0.5) * (1.0 / filterscale)) for j in range(start, stop)]
        total = 0.0
        for t in taps:  # summed left to right, as the C loop does
            total += t
        first[i] = start
        for k, t in enumerate(taps):
            t = t / total if total != 0.0 else t
            scaled = t * (1 << PRECISION_BITS)
            weights[i, k] = int(scaled - 0.5) if t < 0 else int(scaled + 0.5)
    return first, weights


def resample_rows(image: np.ndarray, first: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One Pillow pass along axis 1 of an (H, W, C) uint8 image: fixed-point sum, round, clip to [0, 255]."""
    pixels = image.astype(np.int64)
    acc = np.full((image.shape[0], len(first), image.shape[2]), 1 << (PRECISION_BITS - 1), dtype=np.int64)
    for k in range(weights.shape[1]):
        source = np.minimum(first + k, image.shape[1] - 1)  # taps past the end have weight 0
        acc += pixels[:, source, :] * weights[None, :, k, None]
    return np.clip(acc >> PRECISION_BITS, 0, 255).astype(np.uint8)  # >> floors, like C's arithmetic shift


PASS_ORDERS = ("pillow13", "horizontal_first")


def vertical_pass_first(in_h, in_w, out_h, out_w, pass_order="pillow13") -> bool:
    """Pillow >= 13 (ImagingResampleInner) runs the vertical pass first when the height shrinks by more
    than twice as many pixels as the width does; Pillow <= 12 always runs the horizontal pass first."""
    if pass_order not in PASS_ORDERS:
        raise ValueError(f"pass_order must be one of {list(PASS_ORDERS)}, got {pass_order!r}")
    return pass_order == "pillow13" and in_h - out_h > 0 and in_h - out_h > 2 * (in_w - out_w)


def resize(image, height, width, *, pass_order="pillow13"):
    """§1.2: Pillow Image.resize((width, height), BICUBIC) of a uint8 (H, W, 3) image, bit for bit.

    Two passes, each clipped to uint8 before the next; the order follows vertical_pass_first, and a
    pass whose size does not change is skipped (Pillow's need_horizontal / need_vertical). The math only: the
    input rules (spec/validate.py resize_inputs) are applied by reference.TARGET.
    """
    image = np.asarray(image)
    out_h, out_w = int(height), int(width)
    in_h, in_w = image.shape[:2]

    def horizontal(x):
        return x if out_w == in_w else resample_rows(x, *bicubic_weights(in_w, out_w))

    def vertical(x):
        if out_h == in_h:
            return x
        return resample_rows(x.transpose(1, 0, 2), *bicubic_weights(in_h, out_h)).transpose(1, 0, 2)

    if vertical_pass_first(in_h, in_w, out_h, out_w, pass_order):
        out = horizontal(vertical(image))
    else:
        out = vertical(horizontal(image))
    return np.array(out, dtype=np.uint8, order="C", copy=True)
