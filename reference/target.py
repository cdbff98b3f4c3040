"""The reference as a target: each protocol stage delegates to its module."""
from __future__ import annotations

from vitspec.reference import attention as _attention, block as _block, embed as _embed, merger as _merger
from vitspec.reference import rope as _rope, tokens as _tokens, tower as _tower, windows as _windows
from vitspec.reference import patchify as _patchify


class ReferenceTarget:
    """Every stage of spec/protocol.py, exact float64 NumPy."""

    name = "reference"
    dtype = "float64"
    device = "cpu"

    def with_options(self, device: str = "cpu", dtype: str = "float64"):
        if device != "cpu" or dtype != "float64":
            raise ValueError(f"the reference runs only on device='cpu' in dtype='float64', got {device!r}, {dtype!r}")
        return self

    def smart_resize(self, height, width, factor=28, min_pixels=3136, max_pixels=12845056, variant="hf"):
        from vitspec.reference.resize import smart_resize
        return smart_resize(height, width, factor, min_pixels, max_pixels, variant)

    def resize(self, image, height, width):
        from vitspec.reference.resize import resize
        return resize(image, height, width)

    def preprocess(self, images, min_pixels=3136, max_pixels=12845056):
        from vitspec.reference.pixels import preprocess
        return preprocess(images, min_pixels=min_pixels, max_pixels=max_pixels)

    patchify = staticmethod(_patchify.patchify)
    patch_embed = staticmethod(_embed.patch_embed)
    rotary_position_ids = staticmethod(_rope.rotary_position_ids)
    rotary_cos_sin = staticmethod(_rope.rotary_cos_sin)
    apply_rotary = staticmethod(_rope.apply_rotary)
    window_index = staticmethod(_windows.window_index)
    cu_seqlens = staticmethod(_windows.cu_seqlens)
    attention = staticmethod(_attention.attention)
    rms_norm = staticmethod(_block.rms_norm)
    mlp = staticmethod(_block.mlp)
    vision_block = staticmethod(_block.vision_block)
    merger = staticmethod(_merger.merger)
    vision_tower = staticmethod(_tower.vision_tower)
    num_image_tokens = staticmethod(_tokens.num_image_tokens)
