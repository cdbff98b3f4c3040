"""Pixels to pixel_values (SPEC-NOTES §1.2, §1.3): RGB conversion, resize, rescale, normalize, temporal pairing."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from vitspec.reference.patchify import patchify
from vitspec.reference.resize import resize, smart_resize
from vitspec.spec.configs import PREPROCESSOR, VIDEO_PREPROCESSOR


def host_pixels(x) -> np.ndarray:
    """A NumPy array or torch tensor (any device) as a NumPy array on the host."""
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)


def to_rgb(image, alpha="drop"):
    """§1.2 convert to RGB: (H, W) gray is replicated; (H, W, 4) drops alpha ("drop": HF 4.x, Pillow convert)
    or is composited over white ("white": qwen-vl-utils' paste with the alpha mask, HF 5.x convert_to_rgb):
    round((rgb * a + 255 * (255 - a)) / 255), which never ties because 255 is odd.
    The math only: the input rules are spec/validate.py to_rgb_inputs."""
    image = host_pixels(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 3:
        return image.copy()
    if alpha == "drop":
        return image[:, :, :3].copy()
    rgb, a = image[:, :, :3].astype(np.int64), image[:, :, 3:].astype(np.int64)
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def rescale(x, factor=1 / 255):
    """§1.2 rescale: x * factor in float64. The math only: the input rules are spec/validate.py rescale_inputs."""
    return np.asarray(x, dtype=np.float64) * float(factor)


def normalize(x, mean=PREPROCESSOR["image_mean"], std=PREPROCESSOR["image_std"]):
    """§1.2 normalize: (x - mean[c]) / std[c] over the last axis (channels), in float64.
    The math only: the input rules are spec/validate.py normalize_inputs."""
    x = np.asarray(x, dtype=np.float64)
    return (x - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)


def temporal_frames(frames, temporal_patch_size=2):
    """§1.2 temporal pairing: pad (F, ...) frames to a multiple of T by repeating the LAST frame;
    a still image (F = 1) becomes T identical frames. The math only: the input rules are spec/validate.py
    temporal_frames_inputs."""
    frames = np.asarray(frames)
    missing = -frames.shape[0] % int(temporal_patch_size)
    return np.concatenate([frames] + [frames[-1:]] * missing, axis=0)


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
    """The resized (height, width) of every frame of a video of `frames` frames.

    "per_frame": each frame is sized like an image (HF 5.x Qwen2VLVideoProcessor: smart_resize(height, width)).
    "frames_budget": the frames count in the pixel budget (mlx-vlm's Qwen3VLVideoProcessor, as HF's Qwen3-VL video
    smart_resize): sides below factor are first scaled up to it, t_bar = round(frames / T) * T, and t_bar*h*w is
    rescaled into [min_pixels, max_pixels] with beta from frames*height*width (floor branch clamped to factor).
    The math only: the input rules are spec/validate.py video_size_inputs (applied by preprocess_inputs)."""
    if video_rule == "per_frame":
        return smart_resize(height, width, factor, min_pixels, max_pixels, variant)
    F, T, h, w, f = (int(v) for v in (frames, temporal_patch_size, height, width, factor))
    lo, hi = int(min_pixels), int(max_pixels)
    if h < f or w < f:
        scale = max(f / h, f / w)
        h, w = int(h * scale), int(w * scale)
    h_bar, w_bar = round(Fraction(h, f)) * f, round(Fraction(w, f)) * f
    t_bar = round(Fraction(F, T)) * T
    if t_bar * h_bar * w_bar > hi:
        beta = math.sqrt(F * h * w / hi)
        h_bar, w_bar = max(f, math.floor(h / beta / f) * f), max(f, math.floor(w / beta / f) * f)
    elif t_bar * h_bar * w_bar < lo:
        beta = math.sqrt(lo / (F * h * w))
        h_bar, w_bar = math.ceil(h * beta / f) * f, math.ceil(w * beta / f) * f
    return h_bar, w_bar


def preprocess(
    media,
    image_min_pixels=PREPROCESSOR["min_pixels"],
    image_max_pixels=PREPROCESSOR["max_pixels"],
    video_min_pixels=VIDEO_PREPROCESSOR["min_pixels"],
    video_max_pixels=VIDEO_PREPROCESSOR["max_pixels"],
    patch_size=14,
    temporal_patch_size=2,
    merge_size=2,
    variant="hf",
    video_rule="per_frame",
):
    """§1: a list of uint8 (H, W, 3) images or (F, H, W, 3) videos -> (pixel_values float64 (N, C*T*P*P),
    grid_thw int64 (n, 3)). Each item gets its own size: an image by smart_resize within the image budget, a video
    by video_size (video_rule) within the video budget; all frames of a video share it.

    The math only: the input rules (spec/validate.py preprocess_inputs) are applied by reference.TARGET."""
    P, T, m = int(patch_size), int(temporal_patch_size), int(merge_size)
    rows, grids = [], []
    for i, item in enumerate(media):
        frames = host_pixels(item)
        video = frames.ndim == 4
        frames = frames if video else frames[None]
        F, H, W = frames.shape[:3]
        if video:
            height, width = video_size(F, H, W, P * m, video_min_pixels, video_max_pixels, T, video_rule, variant)
        else:
            height, width = smart_resize(H, W, P * m, image_min_pixels, image_max_pixels, variant)
        if height == 0 or width == 0:  # qwen-vl-utils' unclamped floor branch: the formula leaves no pixel
            raise ValueError(
                f"media[{i}] of {H}x{W} is resized to {height}x{width} by variant {variant!r}: a side of 0, "
                "nothing to resample"
            )
        resized = np.stack([resize(frame, height, width) for frame in frames])
        values = normalize(rescale(resized), PREPROCESSOR["image_mean"], PREPROCESSOR["image_std"])
        values = temporal_frames(values, T).transpose(0, 3, 1, 2)  # (frames, C, H, W)
        pixel_values, grid = patchify(values, P, T, m)
        rows.append(pixel_values)
        grids.append(grid)
    return np.concatenate(rows), np.stack(grids).astype(np.int64)
