"""smart_resize (SPEC-NOTES §1.1) and Pillow-exact bicubic resampling (§1.2) as banded matmuls in torch.

Each axis is resampled by a matrix of Pillow's fixed-point integer weights (Resample.c: 22 fractional
bits, per-output normalized, rounded half away from zero). The matrix is banded, so outputs are
grouped in blocks of BLOCK and each block multiplies one contiguous window of the input: a batched
matmul. Every product and partial sum is an integer, so the matmul is exact when no value exceeds
the float mantissa:
- float32 (CPU, the fast path): each weight k is split as k = 2048*hi + lo with lo in [-1024, 1023];
  both parts are exact in float32 as long as 255 * sum|part| <= 2**23 for every output (checked per
  table), and floor((acc + 2**21) / 2**22) = floor((H + floor((Lo + 2**21) / 2048)) / 2048).
- float64 (CUDA, reduced-precision matmul settings, or very wide kernels): one matrix, always exact.

On the CPU, the compiled kernel impl/resize_native.c runs each pass in integer arithmetic from the same
fixed-point weights, in this module's pass order, split into bands resampled in parallel threads. Where it was not
built, Pillow's own resampler (the function specified) runs the passes instead, once a probe has shown that it
reproduces these tables; NATIVE says which.
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from vitspec.spec.validate import positive_int, require_dim, require_ndim

try:
    from PIL import Image
except ImportError:  # the torch path needs no Pillow
    Image = None

try:
    from vitspec.impl import _resize_native as native
except ImportError:  # not compiled (pip install builds it): Pillow or the torch matmuls resample instead
    native = None

NATIVE = native is not None

MAX_ASPECT_RATIO = 200
PRECISION_BITS = 22  # Pillow Resample.c: 32 - 8 - 2
BLOCK = 32  # outputs per matmul block
SPLIT = 2048  # weight = SPLIT * hi + lo
MIN_BAND = 64  # rows or columns per parallel Pillow call


def _round_half_even(n: int, f: int) -> int:
    """round(n / f) for positive integers, ties to the even quotient, in integer arithmetic."""
    q, r = divmod(n, f)
    return q + (2 * r > f or (2 * r == f and q % 2 == 1))


def smart_resize(height, width, factor=28, min_pixels=3136, max_pixels=12845056, variant="hf"):
    """§1.1 in integer arithmetic; the beta branches repeat upstream's float64 steps (sqrt, two divisions),
    because their rounding, not the exact value, decides ties such as 19x19 -> 84x84."""
    h, w, f = positive_int("height", height), positive_int("width", width), positive_int("factor", factor)
    lo, hi = positive_int("min_pixels", min_pixels), positive_int("max_pixels", max_pixels)
    if variant not in ("hf", "qvu"):
        raise ValueError(f"variant must be one of ['hf', 'qvu'], got {variant!r}")
    if variant == "qvu" and hi < lo:
        raise ValueError(f"max_pixels must be >= min_pixels for variant 'qvu', got {hi} < {lo}")
    if max(h, w) > MAX_ASPECT_RATIO * min(h, w):
        raise ValueError(f"absolute aspect ratio must be at most {MAX_ASPECT_RATIO}, got {h}x{w}")
    floor_side = f if variant == "hf" else 0  # smallest side the floor branch may return
    round_side = f if variant == "qvu" else 0  # smallest side the first rounding may return
    h_bar = max(round_side, _round_half_even(h, f) * f)
    w_bar = max(round_side, _round_half_even(w, f) * f)
    if h_bar * w_bar > hi:
        beta = math.sqrt(h * w / hi)
        return max(floor_side, math.floor(h / beta / f) * f), max(floor_side, math.floor(w / beta / f) * f)
    if h_bar * w_bar < lo:
        beta = math.sqrt(lo / (h * w))
        return math.ceil(h * beta / f) * f, math.ceil(w * beta / f) * f
    return h_bar, w_bar


def video_size(
    frames,
    height,
    width,
    factor=28,
    min_pixels=3136,
    max_pixels=12845056,
    temporal_patch_size=2,
    video_rule="per_frame",
    variant="hf",
):
    """A video's frame size: "per_frame" sizes each frame like an image; "frames_budget" counts the frames
    (rounded to a multiple of temporal_patch_size, ties to even) in the budget, after scaling sides below factor up."""
    if video_rule == "per_frame":
        return smart_resize(height, width, factor, min_pixels, max_pixels, variant)
    if video_rule != "frames_budget":
        raise ValueError(f"video_rule must be one of ['per_frame', 'frames_budget'], got {video_rule!r}")
    F, T = positive_int("frames", frames), positive_int("temporal_patch_size", temporal_patch_size)
    h, w, f = positive_int("height", height), positive_int("width", width), positive_int("factor", factor)
    lo, hi = positive_int("min_pixels", min_pixels), positive_int("max_pixels", max_pixels)
    if F < T:
        raise ValueError(f"video_rule 'frames_budget' needs at least temporal_patch_size={T} frames, got {F}")
    if min(h, w) < f:  # upstream scales by a float factor and truncates
        scale = max(f / h, f / w)
        h, w = int(h * scale), int(w * scale)
    if max(h, w) > MAX_ASPECT_RATIO * min(h, w):
        raise ValueError(f"absolute aspect ratio must be at most {MAX_ASPECT_RATIO}, got {h}x{w}")
    volume = _round_half_even(F, T) * T * _round_half_even(h, f) * f * _round_half_even(w, f) * f
    if volume > hi:
        beta = math.sqrt(F * h * w / hi)
        return max(f, math.floor(h / beta / f) * f), max(f, math.floor(w / beta / f) * f)
    if volume < lo:
        beta = math.sqrt(lo / (F * h * w))
        return math.ceil(h * beta / f) * f, math.ceil(w * beta / f) * f
    return _round_half_even(h, f) * f, _round_half_even(w, f) * f


def pillow_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's fixed-point weights, vectorized over outputs: (first tap int64 (out,), weights int64 (out, taps))."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    count = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64) - first
    x = np.abs(((first[:, None] + np.arange(taps)) - center[:, None] + 0.5) * (1.0 / filterscale))
    w = np.where(x < 1.0, (1.5 * x - 2.5) * x * x + 1, np.where(x < 2.0, (((x - 5) * x + 8) * x - 4) * -0.5, 0.0))
    w[np.arange(taps) >= count[:, None]] = 0.0
    total = np.zeros(out_size)
    for k in range(taps):  # left to right, the C summation order
        total = total + w[:, k]
    w = np.divide(w, total[:, None], out=w, where=total[:, None] != 0.0)
    scaled = w * (1 << PRECISION_BITS)
    return first, np.trunc(np.where(w < 0, scaled - 0.5, scaled + 0.5)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class AxisPlan:
    """Banded weights of one axis: outputs [b*BLOCK, (b+1)*BLOCK) read input rows starts[b] + [0, span)."""

    out_size: int
    starts: np.ndarray  # int64 (blocks,)
    span: int
    weights: np.ndarray  # int64 (blocks, BLOCK, span)
    fits_float32: bool
    on_device: dict = field(default_factory=dict, repr=False)  # (device, dtype) -> (row index, weights)


def axis_plan(in_size: int, out_size: int) -> AxisPlan:
    """The banded matrix of one (in_size, out_size) pair, cached (per weight function: a replaced
    pillow_weights, such as a planted mutant, never reuses another function's tables)."""
    return _axis_plan(in_size, out_size, pillow_weights)


@functools.lru_cache(maxsize=128)
def _axis_plan(in_size: int, out_size: int, weights_of) -> AxisPlan:
    first, w = weights_of(in_size, out_size)
    blocks = -(-out_size // BLOCK)
    last = np.minimum(np.arange(blocks) * BLOCK + BLOCK, out_size) - 1
    starts = first[np.arange(blocks) * BLOCK]
    span = min(int((first[last] + w.shape[1] - starts).max()), in_size)
    starts = np.minimum(starts, in_size - span)
    dense = np.zeros((blocks * BLOCK, span + w.shape[1]), dtype=np.int64)
    rows = np.arange(out_size)
    offset = first - starts[rows // BLOCK]
    for k in range(w.shape[1]):
        dense[rows, offset + k] = w[:, k]
    dense = dense[:, :span]  # taps past the input end carry weight 0
    hi = (dense + SPLIT // 2) // SPLIT
    lo = dense - SPLIT * hi
    fits = 255 * max(np.abs(hi).sum(1).max(), np.abs(lo).sum(1).max()) <= 2**23
    return AxisPlan(out_size, starts, span, dense.reshape(blocks, BLOCK, span), bool(fits))


def _device_weights(plan: AxisPlan, device: torch.device, dtype: torch.dtype):
    """(index of the input rows each block reads, weights) on the device; float32 stacks hi over lo."""
    key = (str(device), dtype)
    if key not in plan.on_device:
        index = torch.from_numpy((plan.starts[:, None] + np.arange(plan.span)).reshape(-1)).to(device)
        if dtype == torch.float64:
            weights = torch.from_numpy(plan.weights.astype(np.float64))
        else:
            hi = (plan.weights + SPLIT // 2) // SPLIT
            weights = torch.from_numpy(np.concatenate([hi, plan.weights - SPLIT * hi], axis=1) / SPLIT)
        plan.on_device[key] = (index, weights.to(device=device, dtype=dtype))
    return plan.on_device[key]


def _exact_float32(plan: AxisPlan, device: torch.device) -> bool:
    return plan.fits_float32 and device.type == "cpu" and torch.get_float32_matmul_precision() == "highest"


def resample_dim1(
    x: torch.Tensor, in_size: int, out_size: int, transposed: bool = False, out_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """One Pillow pass along dim 1 of a (C, in_size, M) float tensor of integers 0..255 -> (C, out_size, M),
    or, with transposed=True, a contiguous (C, M, out_size) tensor; values in out_dtype (default x's)."""
    plan = axis_plan(in_size, out_size)
    dtype = torch.float32 if _exact_float32(plan, x.device) else torch.float64
    index, weights = _device_weights(plan, x.device, dtype)
    blocks = plan.starts.shape[0]
    window = x.to(dtype).index_select(1, index).unflatten(1, (blocks, plan.span))  # (C, blocks, span, M)
    acc = torch.matmul(weights, window)  # (C, blocks, BLOCK or 2*BLOCK, M)
    if dtype == torch.float64:  # acc is exact: floor((acc + 2**21) / 2**22)
        value = acc.mul_(2.0**-PRECISION_BITS).add_(0.5)
    else:  # acc = (H / 2048, Lo / 2048): floor((H + floor((Lo + 2**21) / 2048)) / 2048)
        high, low = acc[:, :, :BLOCK], acc[:, :, BLOCK:]
        value = torch.add(high, low.add_(SPLIT // 2).floor_(), alpha=1.0 / SPLIT)
    value = value.flatten(1, 2)[:, :out_size].clamp_(0, 255).floor_()
    out_dtype = x.dtype if out_dtype is None else out_dtype
    if not transposed:
        return value.to(out_dtype)
    out = torch.empty((x.shape[0], x.shape[2], out_size), dtype=out_dtype, device=x.device)
    out.transpose(1, 2).copy_(value)
    return out


def vertical_pass_first(in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """Pillow >= 13 runs the vertical pass first when the height shrinks by more than twice the width's shrink."""
    return in_h - out_h > 0 and in_h - out_h > 2 * (in_w - out_w)


PATHS = ("native", "pillow", "matmul")


def resize_path(image: torch.Tensor, height: int, width: int) -> str:
    """The resampler resize_planar picks: the compiled kernel on the CPU when built, else Pillow where its probe
    matches, else the torch matmuls (every device)."""
    if native is not None and image.device.type == "cpu":
        return "native"
    return "pillow" if pillow_usable(image, *image.shape[:2], height, width) else "matmul"


def resize_planar(image: torch.Tensor, height: int, width: int, path: str | None = None) -> torch.Tensor:
    """uint8 (H, W, C) on its device -> uint8 (C, height, width) (on the CPU a view of (height, width, C) memory):
    Pillow's two passes in Pillow 13's order, each rounded and clipped to 8 bits; a pass whose size does not change
    is skipped. path (one of PATHS) forces a resampler; the default is resize_path's choice."""
    in_h, in_w, channels = (int(s) for s in image.shape)
    path = resize_path(image, height, width) if path is None else path
    if path not in PATHS:
        raise ValueError(f"path must be one of {list(PATHS)} or None, got {path!r}")
    if path != "matmul" and image.device.type != "cpu":
        raise ValueError(f"path {path!r} resamples on the CPU only, got an image on {image.device}")
    if path == "native":
        if native is None:
            raise ValueError(
                "path 'native' needs the compiled kernel vitspec.impl._resize_native, which was not built "
                "(pip install -e . builds it)"
            )
        return native_resize(image.numpy(), height, width).permute(2, 0, 1)
    if path == "pillow":
        if not pillow_usable(image, in_h, in_w, height, width):
            raise ValueError(
                "path 'pillow' needs Pillow with RGB groups and a resampler that matches this "
                "module's tables (pillow_usable)"
            )
        return pillow_resize(image.numpy(), height, width).permute(2, 0, 1)
    out = torch.empty((channels, height, width), dtype=torch.uint8, device=image.device)
    if vertical_pass_first(in_h, in_w, height, width):  # (C, H, W) -> (C, W, height) -> (C, height, width)
        x = resample_dim1(image.permute(2, 0, 1).to(torch.float32), in_h, height, transposed=True)
        if width != in_w:
            return resample_dim1(x, in_w, width, transposed=True, out_dtype=torch.uint8)
        return out.copy_(x.transpose(1, 2))
    x = image.permute(2, 1, 0).to(torch.float32)  # (C, W, H) -> (C, H, width) -> (C, height, width)
    x = resample_dim1(x, in_w, width, transposed=True) if width != in_w else x.transpose(1, 2)
    if height != in_h:
        return resample_dim1(x, in_h, height, out_dtype=torch.uint8)
    return out.copy_(x)


def in_threads(task, items) -> None:
    """task(item) for every item, in torch.get_num_threads() threads (Pillow and NumPy release the GIL)."""
    items, workers = list(items), min(torch.get_num_threads(), len(items))
    if workers <= 1:
        for item in items:
            task(item)
        return
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(task, items):
            pass


def split(size: int, minimum: int = 1) -> list[tuple[int, int]]:
    """[0, size) as (lo, hi) ranges, one per thread, each at least `minimum` long (or one range)."""
    count = max(1, min(torch.get_num_threads(), size // minimum))
    return [(size * i // count, size * (i + 1) // count) for i in range(count)]


def native_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """pillow_weights as int32 arrays for the compiled kernel, cached (keyed by the weight function, as axis_plan)."""
    return _native_weights(in_size, out_size, pillow_weights)


@functools.lru_cache(maxsize=128)
def _native_weights(in_size: int, out_size: int, weights_of) -> tuple[np.ndarray, np.ndarray]:
    first, w = weights_of(in_size, out_size)
    return np.ascontiguousarray(first, dtype=np.int32), np.ascontiguousarray(w, dtype=np.int32)


def native_pass(src: np.ndarray, dst: np.ndarray, axis: int) -> None:
    """One bicubic pass of uint8 (H, W, C) src along axis (0: height, 1: width) into dst, by the compiled kernel,
    in parallel bands of output rows."""
    in_h, in_w, channels = src.shape
    out_size = dst.shape[axis]
    first, w = native_weights(src.shape[axis], out_size)

    def run(band):
        return native.resample_pass(
            src,
            dst,
            axis,
            in_h,
            in_w,
            out_size,
            channels,
            first,
            w,
            w.shape[1],
            *band,
        )

    in_threads(run, split(dst.shape[0], MIN_BAND // 4))


def native_resize(image: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 (H, W, C) -> uint8 (height, width, C), any C: the two passes in vertical_pass_first's order, each
    clipped to 8 bits, by the compiled kernel; a pass whose size does not change is skipped."""
    in_h, in_w, channels = image.shape
    x = np.ascontiguousarray(image)
    order = [(0, height != in_h), (1, width != in_w)]
    if not vertical_pass_first(in_h, in_w, height, width):
        order.reverse()
    for axis, needed in order:
        if needed:
            y = np.empty((height, x.shape[1], channels) if axis == 0 else (x.shape[0], width, channels), np.uint8)
            native_pass(x, y, axis)
            x = y
    return torch.from_numpy(x.copy() if x is image else x)


def pillow_pass(src: np.ndarray, dst: np.ndarray, axis: int) -> None:
    """Pillow's bicubic pass of uint8 RGB src along axis (0: height, 1: width) into dst, in parallel bands of the other
    axis: a resize keeping one side runs only the other side's pass, row by row (Pillow src/libImaging/Resample.c)."""

    def band(bounds: tuple[int, int]):
        part = slice(*bounds)
        index = (slice(None), part) if axis == 0 else (part,)
        piece = Image.fromarray(np.ascontiguousarray(src[index]))
        dst[index] = np.asarray(piece.resize(dst[index].shape[1::-1], Image.Resampling.BICUBIC))

    in_threads(band, split(src.shape[1 - axis], MIN_BAND))


def pillow_resize(image: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 (H, W, 3k) -> uint8 (height, width, 3k): per RGB group, Pillow's passes in vertical_pass_first's order."""
    in_h, in_w, channels = image.shape
    order = [(0, height != in_h), (1, width != in_w)]
    if not vertical_pass_first(in_h, in_w, height, width):
        order.reverse()
    axes = [axis for axis, needed in order if needed]
    out = np.empty((height, width, channels), dtype=np.uint8)
    for group in range(0, channels, 3):
        x, target = image[:, :, group : group + 3], out[:, :, group : group + 3]
        for i, axis in enumerate(axes):
            shape = (height, x.shape[1], 3) if axis == 0 else (x.shape[0], width, 3)
            y = target if i == len(axes) - 1 else np.empty(shape, dtype=np.uint8)
            pillow_pass(x, y, axis)
            x = y
        if not axes:
            target[...] = x
    return torch.from_numpy(out)


def pillow_usable(image: torch.Tensor, in_h: int, in_w: int, height: int, width: int) -> bool:
    """Pillow resamples: a CPU image of RGB groups, and every pass it would run matches this module's tables."""
    if Image is None or image.device.type != "cpu" or image.shape[2] % 3:
        return False
    passes = ((0, in_h, height), (1, in_w, width))
    return all(pillow_matches(n, size, axis, pillow_weights) for axis, n, size in passes if n != size)


@functools.lru_cache(maxsize=256)
def pillow_matches(in_size: int, out_size: int, axis: int, weights_of) -> bool:
    """Pillow's pass equals resample_dim1 (this module's fixed-point tables) on seeded noise, so that a Pillow build
    that rounds otherwise (a SIMD fork) is never used; weights_of only keys the cache, as in axis_plan."""
    lines = np.random.default_rng(in_size).integers(0, 256, (in_size, 4, 3), dtype=np.uint8)
    expected = resample_dim1(torch.from_numpy(lines).permute(2, 0, 1).float(), in_size, out_size, out_dtype=torch.uint8)
    picture = Image.fromarray(lines if axis == 0 else np.ascontiguousarray(lines.transpose(1, 0, 2)))
    got = np.asarray(picture.resize((4, out_size) if axis == 0 else (out_size, 4), Image.Resampling.BICUBIC))
    return np.array_equal(got if axis == 0 else got.transpose(1, 0, 2), expected.permute(1, 2, 0).numpy())


def as_image_tensor(image, name: str = "image", device=None) -> torch.Tensor:
    """A uint8 (H, W, 3) NumPy array or tensor as a torch tensor (on device when given)."""
    require_ndim(name, image, 3, "(height, width, 3)", "uint8 pixels")
    require_dim(name, image, 2, 3, "channels (RGB)")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"{name} must be uint8, got dtype {image.dtype}")
        image = torch.from_numpy(np.ascontiguousarray(image))
    elif not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a NumPy array or torch tensor, got {type(image).__name__}")
    if image.dtype != torch.uint8:
        raise TypeError(f"{name} must be uint8, got dtype {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must have positive height and width, got shape {tuple(image.shape)}")
    return image if device is None else image.to(device)


def resize(image, height, width, path=None):
    """§1.2: Pillow Image.resize((width, height), BICUBIC) of a uint8 (H, W, 3) image, bit for bit, on its device
    (path: see resize_planar)."""
    image = as_image_tensor(image)
    height, width = positive_int("height", height), positive_int("width", width)
    return resize_planar(image, height, width, path).permute(1, 2, 0).contiguous()
