"""Pixels to pixel_values (SPEC-NOTES §1.2, §1.3) on a device, in a few tensor ops per image or video
(on the CPU: the compiled kernels of impl/resize_native.c in threads; without them Pillow and NumPy)."""

from __future__ import annotations

import numpy as np
import torch

from vitspec.impl.patchify import as_tensor, patch_blocks
from vitspec.impl.resize import in_threads, native, resize_planar, smart_resize, split, video_size
from vitspec.spec.configs import PREPROCESSOR, VIDEO_PREPROCESSOR
from vitspec.spec.validate import positive_int, require_ndim


def affine_constants(device, dtype):
    """Per-channel (scale, shift) with (x / 255 - mean) / std == x * scale + shift, computed in float64."""
    mean = torch.tensor(PREPROCESSOR["image_mean"], dtype=torch.float64)
    std = torch.tensor(PREPROCESSOR["image_std"], dtype=torch.float64)
    scale, shift = 1.0 / (255.0 * std), -mean / std
    return scale.to(device, dtype), shift.to(device, dtype)


def affine_on_host(blocks: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, T: int) -> torch.Tensor:
    """x * scale + shift of uint8 blocks (t, bh, bw, mh, mw, C, 1 or T, P, P) on the CPU -> (N, C, T, P*P), in NumPy,
    one row of merge blocks per task: gather the uint8, convert, scale and shift in cache, copy to all T frames."""
    x = blocks.numpy()
    scale, shift = scale.numpy().reshape(-1, 1, 1, 1), shift.numpy().reshape(-1, 1, 1, 1)
    out = np.empty(x.shape[:6] + (T,) + x.shape[7:], dtype=scale.dtype)  # NumPy gives large arrays huge pages

    def block_row(i: int):
        values = np.ascontiguousarray(x[:, i]).astype(out.dtype)
        values *= scale
        values += shift
        out[:, i] = values  # a still image's one frame is broadcast to the T frames

    in_threads(block_row, range(x.shape[1]))
    return torch.from_numpy(out).view(-1, x.shape[5], T, x.shape[7] * x.shape[8])


def native_pixel_values(
    image: torch.Tensor, frames: int, scale: torch.Tensor, shift: torch.Tensor, P: int, T: int, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resized uint8 frames, laid out (height, width, frames * C) on the CPU -> (pixel_values (N, C, T, P*P),
    grid_thw) by the compiled kernel: every value is looked up in a per-channel table of x * scale + shift for
    x = 0..255, computed with the same float ops as affine_on_host; frame min(g*T + t, frames - 1) fills slot t."""
    H, W, channels = image.shape
    C, groups = channels // frames, -(-frames // T)
    x = image.numpy()
    table = np.arange(256, dtype=scale.numpy().dtype)[None, :] * scale.numpy()[:, None]
    table += shift.numpy()[:, None]
    out = np.empty((groups * (H // P) * (W // P), C, T, P * P), dtype=table.dtype)

    def run(band):
        return native.to_pixel_values(
            x,
            out,
            table,
            frames,
            H,
            W,
            C,
            P,
            T,
            m,
            out.itemsize,
            *band,
        )

    in_threads(run, split(groups * (H // (P * m))))
    return torch.from_numpy(out), torch.tensor([groups, H // P, W // P], dtype=torch.int64)


def video_frames(name: str, item) -> torch.Tensor:
    """A uint8 (H, W, 3) image or (F, H, W, 3) video as an (F, H, W, 3) tensor."""
    require_ndim(name, item, (3, 4), "(height, width, 3) or (frames, height, width, 3)", "uint8 pixels")
    frames = as_tensor(name, item)
    if frames.dtype != torch.uint8:
        raise TypeError(f"{name} must be uint8, got dtype {frames.dtype}")
    frames = frames[None] if frames.ndim == 3 else frames
    if frames.shape[-1] != 3:
        raise ValueError(f"{name} must have 3 channels (RGB) on its last axis, got shape {tuple(item.shape)}")
    if 0 in frames.shape:
        raise ValueError(f"{name} must have at least one frame and positive height and width, got {tuple(item.shape)}")
    return frames


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
    *,
    device="cpu",
    dtype=torch.float32,
):
    """§1: list of uint8 (H, W, 3) images or (F, H, W, 3) videos -> (pixel_values (N, C*T*P*P) of dtype on
    device, grid_thw int64 (n, 3)). Images are sized within the image budget, videos within the video budget by
    video_rule. Resize (uint8), pair frames, flatten (uint8), then rescale and normalize in one affine op that
    writes the float output once."""
    # the input rules (spec/validate.py preprocess_inputs) are applied by impl.TARGET where the stage is called
    P, T, m = (int(v) for v in (patch_size, temporal_patch_size, merge_size))
    image_min_pixels, image_max_pixels, video_min_pixels, video_max_pixels = (
        int(v) for v in (image_min_pixels, image_max_pixels, video_min_pixels, video_max_pixels)
    )
    device = torch.device(device)
    work = torch.promote_types(dtype, torch.float32)  # normalize in float32 at least
    scale, shift = affine_constants(device, work)
    rows, grids = [], []
    for i, item in enumerate(media):
        frames = video_frames(f"media[{i}]", item)
        F, H, W, C = frames.shape
        if len(item.shape) == 4:
            height, width = video_size(F, H, W, P * m, video_min_pixels, video_max_pixels, T, video_rule, variant)
        else:
            height, width = smart_resize(H, W, P * m, image_min_pixels, image_max_pixels, variant)
        height, width = positive_int("resized height", height), positive_int("resized width", width)
        packed = frames.to(device).permute(1, 2, 0, 3).reshape(H, W, F * C)  # frames as extra channels
        planes = resize_planar(packed, height, width).reshape(F, C, height, width)  # uint8
        if native is not None and device.type == "cpu":  # work is float32 or float64: the table's dtype
            values, grid = native_pixel_values(
                planes.view(F * C, height, width).permute(1, 2, 0), F, scale, shift, P, T, m
            )
            rows.append(values.view(values.shape[0], -1).to(dtype))
            grids.append(grid)
            continue
        if F > 1 and F % T:
            planes = torch.cat([planes, planes[-1:].expand(-F % T, C, height, width)])  # repeat the LAST frame
        frames_per_row = 1 if F == 1 else T  # a still image: one frame, broadcast to T identical frames below
        blocks, grid = patch_blocks(planes, P, frames_per_row, m)
        if device.type == "cpu":
            values = affine_on_host(blocks, scale, shift, T)
        else:  # rescale + normalize as one affine op per channel, written straight into the (C, T, P, P) columns
            cells = blocks.reshape(-1, C, frames_per_row, P * P)  # uint8 in pixel_values order
            values = torch.empty(cells.shape[0], C, T, P * P, dtype=work, device=device)
            torch.addcmul(shift.view(1, C, 1, 1), cells.expand(-1, C, T, P * P), scale.view(1, C, 1, 1), out=values)
        rows.append(values.view(values.shape[0], -1).to(dtype))
        grids.append(grid)
    pixel_values = rows[0] if len(rows) == 1 else torch.cat(rows)
    return pixel_values, torch.stack(grids)
