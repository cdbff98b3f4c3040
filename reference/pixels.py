"""Pixels to pixel_values (SPEC-NOTES §1.2, §1.3): RGB conversion, resize, rescale, normalize, temporal pairing."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from vitspec.reference.patchify import patchify
from vitspec.reference.resize import MAX_ASPECT_RATIO, resize, smart_resize
from vitspec.spec.configs import PREPROCESSOR, VIDEO_PREPROCESSOR
from vitspec.spec.validate import (
    patch_geometry,
    positive_float,
    positive_int,
    require_finite,
    require_image_list,
    require_ndim,
)

ALPHA_POLICIES = ("drop", "white")


def require_uint8(name: str, image) -> np.ndarray:
    """A uint8 NumPy array (pixel data is never reinterpreted from another dtype)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a uint8 NumPy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8, got dtype {image.dtype}")
    return image


def to_rgb(image, alpha="drop"):
    """§1.2 convert to RGB: (H, W) gray is replicated; (H, W, 4) drops alpha ("drop": HF 4.x, Pillow convert)
    or is composited over white ("white": qwen-vl-utils' paste with the alpha mask, HF 5.x convert_to_rgb):
    round((rgb * a + 255 * (255 - a)) / 255), which never ties because 255 is odd."""
    require_ndim("image", image, (2, 3), "(height, width) or (height, width, 3 or 4)", "uint8 pixels")
    image = require_uint8("image", image)
    if alpha not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {list(ALPHA_POLICIES)}, got {alpha!r}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 3:
        return image.copy()
    if image.shape[2] != 4:
        raise ValueError(f"image must have 3 (RGB) or 4 (RGBA) channels, got shape {image.shape}")
    if alpha == "drop":
        return image[:, :, :3].copy()
    rgb, a = image[:, :, :3].astype(np.int64), image[:, :, 3:].astype(np.int64)
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def rescale(x, factor=1 / 255):
    """§1.2 rescale: x * factor in float64."""
    factor = positive_float("factor", factor)
    x = np.asarray(x, dtype=np.float64)
    require_finite("x", bool(np.isfinite(x).all()))
    return x * factor


def normalize(x, mean=PREPROCESSOR["image_mean"], std=PREPROCESSOR["image_std"]):
    """§1.2 normalize: (x - mean[c]) / std[c] over the last axis (channels), in float64."""
    x = np.asarray(x, dtype=np.float64)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if mean.shape != std.shape or mean.ndim != 1 or x.ndim == 0 or x.shape[-1] != mean.shape[0]:
        raise ValueError(
            f"mean and std must hold one value per channel (last axis of x, shape {x.shape}), "
            f"got {mean.shape} and {std.shape}"
        )
    require_finite("x", bool(np.isfinite(x).all()))
    require_finite("mean", bool(np.isfinite(mean).all()))
    if not (np.isfinite(std).all() and (std > 0).all()):
        raise ValueError(f"std must be finite and > 0, got {std.tolist()}")
    return (x - mean) / std


def temporal_frames(frames, temporal_patch_size=2):
    """§1.2 temporal pairing: pad (F, ...) frames to a multiple of T by repeating the LAST frame;
    a still image (F = 1) becomes T identical frames."""
    T = positive_int("temporal_patch_size", temporal_patch_size)
    if not hasattr(frames, "shape") or len(frames.shape) < 1 or frames.shape[0] == 0:
        raise ValueError("frames must be an array with at least one frame along axis 0")
    frames = np.asarray(frames)
    missing = -frames.shape[0] % T
    return np.concatenate([frames] + [frames[-1:]] * missing, axis=0)


VIDEO_RULES = ("per_frame", "frames_budget")


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
    rescaled into [min_pixels, max_pixels] with beta from frames*height*width (floor branch clamped to factor)."""
    if video_rule not in VIDEO_RULES:
        raise ValueError(f"video_rule must be one of {list(VIDEO_RULES)}, got {video_rule!r}")
    if video_rule == "per_frame":
        return smart_resize(height, width, factor, min_pixels, max_pixels, variant)
    F, T = positive_int("frames", frames), positive_int("temporal_patch_size", temporal_patch_size)
    h, w, f = positive_int("height", height), positive_int("width", width), positive_int("factor", factor)
    lo, hi = positive_int("min_pixels", min_pixels), positive_int("max_pixels", max_pixels)
    if F < T:
        raise ValueError(f"video_rule 'frames_budget' needs at least temporal_patch_size={T} frames, got {F}")
    if h < f or w < f:
        scale = max(f / h, f / w)
        h, w = int(h * scale), int(w * scale)
    if max(h, w) > MAX_ASPECT_RATIO * min(h, w):
        raise ValueError(f"absolute aspect ratio must be at most {MAX_ASPECT_RATIO}, got {h}x{w}")
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
    by video_size (video_rule) within the video budget; all frames of a video share it."""
    P, T, m = patch_geometry(patch_size, temporal_patch_size, merge_size)
    require_image_list(media)
    image_min_pixels, image_max_pixels, video_min_pixels, video_max_pixels = (
        positive_int(name, value)
        for name, value in (
            ("image_min_pixels", image_min_pixels),
            ("image_max_pixels", image_max_pixels),
            ("video_min_pixels", video_min_pixels),
            ("video_max_pixels", video_max_pixels),
        )
    )
    rows, grids = [], []
    for i, item in enumerate(media):
        name = f"media[{i}]"
        require_ndim(name, item, (3, 4), "(height, width, 3) or (frames, height, width, 3)", "uint8 pixels")
        frames = require_uint8(name, item)
        video = frames.ndim == 4
        frames = frames if video else frames[None]
        if frames.shape[-1] != 3:
            raise ValueError(f"{name} must have 3 channels (RGB) on its last axis, got shape {item.shape}")
        if 0 in frames.shape:
            raise ValueError(f"{name} must have at least one frame and positive height and width, got {item.shape}")
        if video:
            height, width = video_size(
                frames.shape[0],
                frames.shape[1],
                frames.shape[2],
                P * m,
                video_min_pixels,
                video_max_pixels,
                T,
                video_rule,
                variant,
            )
        else:
            height, width = smart_resize(
                frames.shape[1], frames.shape[2], P * m, image_min_pixels, image_max_pixels, variant
            )
        resized = np.stack([resize(frame, height, width) for frame in frames])
        values = normalize(rescale(resized), PREPROCESSOR["image_mean"], PREPROCESSOR["image_std"])
        values = temporal_frames(values, T).transpose(0, 3, 1, 2)  # (frames, C, H, W)
        pixel_values, grid = patchify(values, P, T, m)
        rows.append(pixel_values)
        grids.append(grid)
    return np.concatenate(rows), np.stack(grids).astype(np.int64)
