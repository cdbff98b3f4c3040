"""Pixels to pixel_values (SPEC-NOTES §1.2, §1.3): RGB conversion, resize, rescale, normalize, temporal pairing."""
from __future__ import annotations

import numpy as np

from vitspec.reference.patchify import patchify
from vitspec.reference.resize import resize, smart_resize
from vitspec.spec.configs import PREPROCESSOR
from vitspec.spec.validate import (patch_geometry, positive_float, positive_int, require_finite, require_image_list,
                           require_ndim)

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
        raise ValueError(f"mean and std must hold one value per channel (last axis of x, shape {x.shape}), "
                         f"got {mean.shape} and {std.shape}")
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


def preprocess(images, min_pixels=3136, max_pixels=12845056, patch_size=14, temporal_patch_size=2, merge_size=2,
               variant="hf"):
    """§1: a list of uint8 (H, W, 3) images or (F, H, W, 3) videos -> (pixel_values float64 (N, C*T*P*P),
    grid_thw int64 (n, 3)). Each item gets its own smart_resize size; all frames of a video share it."""
    P, T, m = patch_geometry(patch_size, temporal_patch_size, merge_size)
    require_image_list(images)
    rows, grids = [], []
    for i, item in enumerate(images):
        name = f"images[{i}]"
        require_ndim(name, item, (3, 4), "(height, width, 3) or (frames, height, width, 3)", "uint8 pixels")
        frames = require_uint8(name, item)
        frames = frames[None] if frames.ndim == 3 else frames
        if frames.shape[-1] != 3:
            raise ValueError(f"{name} must have 3 channels (RGB) on its last axis, got shape {item.shape}")
        if 0 in frames.shape:
            raise ValueError(f"{name} must have at least one frame and positive height and width, got {item.shape}")
        height, width = smart_resize(frames.shape[1], frames.shape[2], P * m, min_pixels, max_pixels, variant)
        resized = np.stack([resize(frame, height, width) for frame in frames])
        values = normalize(rescale(resized), PREPROCESSOR["image_mean"], PREPROCESSOR["image_std"])
        values = temporal_frames(values, T).transpose(0, 3, 1, 2)  # (frames, C, H, W)
        pixel_values, grid = patchify(values, P, T, m)
        rows.append(pixel_values)
        grids.append(grid)
    return np.concatenate(rows), np.stack(grids).astype(np.int64)
