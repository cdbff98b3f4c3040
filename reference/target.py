"""The reference as a target: each protocol stage delegates to its module."""
from __future__ import annotations

from vitspec.reference import attention as _attention, block as _block, embed as _embed, merger as _merger
from vitspec.reference import rope as _rope, tokens as _tokens, tower as _tower, windows as _windows
from vitspec.reference import patchify as _patchify
from vitspec.spec.configs import PREPROCESSOR, VIDEO_PREPROCESSOR
from vitspec.spec.validate import (attention_module_inputs, positive_float, positive_int, require_cu_seqlens,
                                   require_ndim, rotary_input)


class ReferenceTarget:
    """Every stage of spec/protocol.py, exact float64 NumPy."""

    name = "reference"
    capabilities = {"validates_inputs": True, "rotary": "angles"}
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

    def preprocess(self, media, image_min_pixels=PREPROCESSOR["min_pixels"], image_max_pixels=PREPROCESSOR["max_pixels"],
                   video_min_pixels=VIDEO_PREPROCESSOR["min_pixels"], video_max_pixels=VIDEO_PREPROCESSOR["max_pixels"]):
        from vitspec.reference.pixels import preprocess
        return preprocess(media, image_min_pixels, image_max_pixels, video_min_pixels, video_max_pixels,
                          video_rule="per_frame")

    patchify = staticmethod(_patchify.patchify)
    patch_embed = staticmethod(_embed.patch_embed)
    rotary_position_ids = staticmethod(_rope.rotary_position_ids)
    rotary_angles = staticmethod(_rope.rotary_angles)
    rotary_cos_sin = staticmethod(_rope.rotary_cos_sin)

    def apply_rotary(self, x, rotary):
        """RoPE on x (N, heads, head_dim) with the angles (N, head_dim/2) this target declares."""
        require_ndim("x", x, 3, "(num_tokens, heads, head_dim)")
        rotary_input(rotary, int(x.shape[0]), int(x.shape[2]), self.capabilities["rotary"])
        return _rope.apply_rotary(x, rotary)

    def attention_module(self, x, params, cu_seqlens, rotary, num_heads):
        """qkv, RoPE, segment attention, proj (HF's Qwen2_5_VLVisionAttention) on the blocks.i.attn weights."""
        attention_module_inputs(x, params, cu_seqlens, rotary, num_heads, self.capabilities["rotary"])
        return _attention.attention_module(x, params, cu_seqlens, rotary, num_heads)

    def vision_block(self, x, params, cu_seqlens, rotary, num_heads, eps=1e-6):
        """One pre-norm block; rotary is the angles (N, head_dim/2) this target declares."""
        require_ndim("x", x, 2, "(num_tokens, hidden)")
        N, D = (int(s) for s in x.shape)
        H = positive_int("num_heads", num_heads)
        positive_float("eps", eps)
        if D % H:
            raise ValueError(f"num_heads must divide the hidden size {D}, got {H}")
        _block.check_block_params(params, D)
        require_cu_seqlens(cu_seqlens, N)
        rotary_input(rotary, N, D // H, self.capabilities["rotary"])
        return _block.vision_block(x, params, cu_seqlens, rotary, num_heads, eps)

    window_index = staticmethod(_windows.window_index)
    cu_seqlens = staticmethod(_windows.cu_seqlens)
    attention = staticmethod(_attention.attention)
    rms_norm = staticmethod(_block.rms_norm)
    mlp = staticmethod(_block.mlp)
    merger = staticmethod(_merger.merger)
    vision_tower = staticmethod(_tower.vision_tower)
    num_image_tokens = staticmethod(_tokens.num_image_tokens)
