"""Mutants of the preprocessing and layout stages: smart_resize, resize, preprocess, patchify, patch_embed,
num_image_tokens (SPEC-NOTES §1, §2, §4 and the §7 classes "Preprocessing" and "Layout")."""
from __future__ import annotations

import torch

from vitspec.mutants.plant import Mutant, Swap, edit
from vitspec.spec.validate import shape_of

RESIZE = ("smart_resize", "preprocess")
LAYOUT = ("patchify", "preprocess")


def round_half_up(n: int, f: int) -> int:
    """Bug class "rounding at ties": round(n / f) with ties away from zero (70 / 28 -> 3, not 2)."""
    q, r = divmod(n, f)
    return q + (2 * r >= f)


def sides_swapped(smart_resize):
    """Bug class "width/height swapped": smart_resize called as (width, height)."""
    def swapped(height, width, *args, **kwargs):
        return smart_resize(width, height, *args, **kwargs)
    return swapped


def refuses_small_sides(smart_resize):
    """Bug class "crashes on sides < 28" (HF 4.49): a side shorter than the factor is refused."""
    def strict(height, width, factor=28, *args, **kwargs):
        if min(height, width) < factor:
            raise ValueError(f"height:{height} and width:{width} must be larger than factor:{factor}")
        return smart_resize(height, width, factor, *args, **kwargs)
    return strict


_FIRST_SIZE: list = []  # the first item's size, shared by the image and the video sizing of one planted call


def first_size_for_all(smart_resize):
    """Bug class "all images of a batch resized to one size": the first item's size is reused (images and videos)."""
    _FIRST_SIZE.clear()

    def first_size(*args, **kwargs):
        if not _FIRST_SIZE:
            _FIRST_SIZE.append(smart_resize(*args, **kwargs))
        return _FIRST_SIZE[0]
    return first_size


def first_size_for_videos(video_size):
    """The video half of first_size_for_all: a video takes the first item's size too."""
    def first_size(*args, **kwargs):
        if not _FIRST_SIZE:
            _FIRST_SIZE.append(video_size(*args, **kwargs))
        return _FIRST_SIZE[0]
    return first_size


def padded_with_first_frame(video_frames):
    """Bug class "video padding wrong": an odd-length video padded by repeating its FIRST frame."""
    def frames(name, item):
        x = video_frames(name, item)
        return torch.cat([x, x[:1]]) if x.shape[0] > 1 and x.shape[0] % 2 else x
    return frames


def padded_when_even(video_frames):
    """Bug class "video padding count wrong for some frame counts": pad = T - F % T, a whole extra pair when even."""
    def frames(name, item):
        x = video_frames(name, item)
        return torch.cat([x, x[-1:].expand(2, *x.shape[1:])]) if x.shape[0] > 1 and x.shape[0] % 2 == 0 else x
    return frames


def channels_reversed(affine_constants):
    """Bug class "channel-swapped": the CLIP mean/std applied in BGR order to RGB pixels."""
    def reversed_constants(device, dtype):
        return tuple(c.flip(0) for c in affine_constants(device, dtype))
    return reversed_constants


def first_temporal_slice(embed_matrix):
    """Bug class "conv kernel reduced to one temporal slice": only W[:, :, 0] acts, on the first frame."""
    def one_slice(weight, dtype, device):
        D, C, T, P, _ = shape_of(weight)
        w = embed_matrix(weight, dtype, device).reshape(D, C, T, P * P).clone()
        w[:, :, 1:] = 0
        return w.reshape(D, C * T * P * P)
    return one_slice


def one_frame_per_image(grid_rows):
    """Bug class "token estimator uses a different rule": the frame count t is ignored."""
    def rows(grid_thw, merge_size):
        return [(1, h, w) for _, h, w in grid_rows(grid_thw, merge_size)]
    return rows


MUTANTS = (
    Mutant("smart_resize_round_half_up", RESIZE, "wrong rounding at ties",
           "round(side / 28) with ties away from zero (70 -> 84, 126 -> 140) instead of ties to even (56, 112)",
           (Swap("vitspec.impl.resize._round_half_even", lambda _: round_half_up),)),
    Mutant("smart_resize_floor_unclamped", ("smart_resize",), "a side floored to 0",
           "the HF variant's floor branch is not clamped to 28 (QVU's unclamped floor): thin images with a small "
           "max_pixels get a side of 0",
           (edit("vitspec.impl.resize.smart_resize", 'floor_side = f if variant == "hf" else 0', "floor_side = 0"),)),
    Mutant("smart_resize_beta_from_rounded", ("smart_resize",), "wrong rescale rule",
           "the max_pixels branch computes beta from the rounded size h'·w' instead of the original h·w",
           (edit("vitspec.impl.resize.smart_resize", "beta = math.sqrt(h * w / hi)",
                 "beta = math.sqrt(h_bar * w_bar / hi)"),)),
    Mutant("smart_resize_ceil_branch_floored", RESIZE, "wrong rounding in the min_pixels branch",
           "the min_pixels branch floors h·beta/28 instead of taking the ceiling: small images end below min_pixels",
           (edit("vitspec.impl.resize.smart_resize", "math.ceil(h * beta / f) * f, math.ceil(w * beta / f) * f",
                 "math.floor(h * beta / f) * f, math.floor(w * beta / f) * f"),)),
    Mutant("smart_resize_ratio_200_refused", ("smart_resize", "preprocess"), "crashes on valid sizes",
           "an aspect ratio of exactly 200 is refused (>= instead of >)",
           (edit("vitspec.impl.resize.smart_resize", "if max(h, w) > MAX_ASPECT_RATIO * min(h, w):",
                 "if max(h, w) >= MAX_ASPECT_RATIO * min(h, w):"),)),
    Mutant("smart_resize_refuses_small_sides", RESIZE, "crashes on sides < 28",
           "images with a side shorter than 28 pixels are refused (transformers 4.49) instead of resized",
           (Swap("vitspec.impl.resize.smart_resize", refuses_small_sides),)),
    Mutant("smart_resize_height_width_swapped", RESIZE, "width/height swapped",
           "smart_resize computes the size of the transposed image (called with width, height)",
           (Swap("vitspec.impl.resize.smart_resize", sides_swapped),)),
    Mutant("resize_horizontal_pass_first", ("resize", "preprocess"), "resampling differs from Pillow",
           "bicubic always runs the horizontal pass first (Pillow <= 12); Pillow 13 runs the vertical pass first "
           "when the height shrinks much more than the width",
           (Swap("vitspec.impl.resize.vertical_pass_first", lambda _: lambda *a: False),)),
    Mutant("resize_bicubic_a_075", ("resize", "preprocess"), "resampling differs from Pillow",
           "the cubic kernel with a = -0.75 (OpenCV, torch) instead of Pillow's a = -0.5",
           (edit("vitspec.impl.resize.pillow_weights", "(1.5 * x - 2.5) * x * x + 1", "(1.25 * x - 2.25) * x * x + 1",
                 ("((x - 5) * x + 8) * x - 4) * -0.5", "((x - 5) * x + 8) * x - 4) * -0.75")),)),
    Mutant("resize_no_antialias", ("resize", "preprocess"), "resampling differs from Pillow",
           "downscaling without widening the kernel (no antialias): the filter support stays 2 input pixels",
           (edit("vitspec.impl.resize.pillow_weights", "filterscale = max(scale, 1.0)", "filterscale = 1.0"),)),
    Mutant("preprocess_resized_transposed", ("preprocess",), "width/height swapped",
           "the image is resampled to (width, height) and the buffer viewed as (height, width): non-square images "
           "come out scrambled with the right shape",
           (edit("vitspec.impl.pixels.preprocess", "resize_planar(packed, height, width)",
                 "resize_planar(packed, width, height)"),)),
    Mutant("preprocess_batch_resized_to_first", ("preprocess",), "all images of a batch resized to one size",
           "every image and video of a batch is resized to the first item's smart_resize size",
           (Swap("vitspec.impl.pixels.smart_resize", first_size_for_all, everywhere=False),
            Swap("vitspec.impl.pixels.video_size", first_size_for_videos, everywhere=False))),
    Mutant("preprocess_video_pads_first_frame", ("preprocess",), "video frame padding wrong",
           "an odd-length video is padded by repeating its FIRST frame instead of its last",
           (Swap("vitspec.impl.pixels.video_frames", padded_with_first_frame),)),
    Mutant("preprocess_video_pads_even_lengths", ("preprocess",), "video frame padding count wrong",
           "the padding count is T - F % T, so an even-length video gets a whole extra pair of its last frame",
           (Swap("vitspec.impl.pixels.video_frames", padded_when_even),)),
    Mutant("preprocess_rescale_256", ("preprocess",), "wrong rescale constant",
           "pixels rescaled by 1/256 instead of 1/255 before the CLIP normalization",
           (edit("vitspec.impl.pixels.affine_constants", "1.0 / (255.0 * std)", "1.0 / (256.0 * std)"),)),
    Mutant("preprocess_channels_reversed", ("preprocess",), "channel-swapped columns",
           "CLIP mean and std applied in BGR order to RGB pixels",
           (Swap("vitspec.impl.pixels.affine_constants", channels_reversed),)),
    Mutant("patchify_raster_rows", LAYOUT, "raster instead of merge-block row order",
           "pixel_values rows in raster order of patches instead of 2×2 merge blocks",
           (Swap("vitspec.impl.patchify.TO_ROWS", lambda _: (0, 3, 4, 6, 7, 2, 1, 5, 8)),)),
    Mutant("patchify_time_before_channel", LAYOUT, "channel/time axes swapped inside a row",
           "columns ordered (T, C, P, P) instead of (C, T, P, P)",
           (Swap("vitspec.impl.patchify.TO_ROWS", lambda _: (0, 3, 6, 4, 7, 1, 2, 5, 8)),)),
    Mutant("patchify_block_column_major", LAYOUT, "wrong grouping order inside a merge block",
           "the four rows of a 2×2 block ordered TL, BL, TR, BR instead of TL, TR, BL, BR",
           (Swap("vitspec.impl.patchify.TO_ROWS", lambda _: (0, 3, 6, 7, 4, 2, 1, 5, 8)),)),
    Mutant("patch_embed_one_temporal_slice", ("patch_embed", "vision_tower"),
           "conv kernel reduced to one temporal slice",
           "the Conv3d ported as a 2-D conv with W[:, :, 0] on the first frame; W[:, :, 1] never acts",
           (Swap("vitspec.impl.embed.embed_matrix", first_temporal_slice),)),
    Mutant("tokens_ignore_frames", ("num_image_tokens",), "token estimator and processor disagree",
           "placeholder count h·w/4 per item, ignoring grid_t (videos get too few tokens)",
           (Swap("vitspec.impl.tokens.grid_rows", one_frame_per_image, everywhere=False),)),
)
