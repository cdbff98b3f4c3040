"""The reference as a target: each protocol stage applies its input rules (spec/validate.py), once, then calls the
math in its module (reference/<module>.py holds the formulas only, as JAX's lax_reference does)."""

from __future__ import annotations

from vitspec.reference import (
    attention as _attention,
    block as _block,
    embed as _embed,
    merger as _merger,
    patchify as _patchify,
    pixels as _pixels,
    resize as _resize,
    rope as _rope,
    tokens as _tokens,
    tower as _tower,
    windows as _windows,
)
from vitspec.spec.configs import PREPROCESSOR, VIDEO_PREPROCESSOR
from vitspec.spec.validate import (
    apply_rotary_inputs,
    attention_inputs,
    attention_module_inputs,
    cu_seqlens_inputs,
    merger_inputs,
    mlp_inputs,
    num_image_tokens_inputs,
    patch_embed_inputs,
    patchify_inputs,
    preprocess_inputs,
    resize_inputs,
    rms_norm_inputs,
    rotary_angles_inputs,
    rotary_position_ids_inputs,
    smart_resize_inputs,
    vision_block_inputs,
    vision_tower_inputs,
    window_index_inputs,
)


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
        smart_resize_inputs(height, width, factor, min_pixels, max_pixels, variant)
        return _resize.smart_resize(height, width, factor, min_pixels, max_pixels, variant)

    def resize(self, image, height, width):
        resize_inputs(image, height, width)
        return _resize.resize(image, height, width)

    def preprocess(
        self,
        media,
        image_min_pixels=PREPROCESSOR["min_pixels"],
        image_max_pixels=PREPROCESSOR["max_pixels"],
        video_min_pixels=VIDEO_PREPROCESSOR["min_pixels"],
        video_max_pixels=VIDEO_PREPROCESSOR["max_pixels"],
    ):
        budgets = (image_min_pixels, image_max_pixels, video_min_pixels, video_max_pixels)
        preprocess_inputs(media, *budgets, video_rule="per_frame")
        return _pixels.preprocess(media, *budgets, video_rule="per_frame")

    def patchify(self, frames, patch_size=14, temporal_patch_size=2, merge_size=2):
        patchify_inputs(frames, patch_size, temporal_patch_size, merge_size)
        return _patchify.patchify(frames, patch_size, temporal_patch_size, merge_size)

    def patch_embed(self, pixel_values, weight):
        patch_embed_inputs(pixel_values, weight)
        return _embed.patch_embed(pixel_values, weight)

    def rotary_position_ids(self, grid_thw, merge_size=2):
        rotary_position_ids_inputs(grid_thw, merge_size)
        return _rope.rotary_position_ids(grid_thw, merge_size)

    def rotary_angles(self, position_ids, head_dim, theta=10000.0):
        rotary_angles_inputs(position_ids, head_dim, theta)
        return _rope.rotary_angles(position_ids, head_dim, theta)

    def rotary_cos_sin(self, position_ids, head_dim, theta=10000.0):
        rotary_angles_inputs(position_ids, head_dim, theta)
        return _rope.rotary_cos_sin(position_ids, head_dim, theta)

    def apply_rotary(self, x, rotary):
        """RoPE on x (N, heads, head_dim) with the angles (N, head_dim/2) this target declares."""
        apply_rotary_inputs(x, rotary, self.capabilities["rotary"])
        return _rope.apply_rotary(x, rotary)

    def attention_module(self, x, params, cu_seqlens, rotary, num_heads):
        """qkv, RoPE, segment attention, proj (HF's Qwen2_5_VLVisionAttention) on the blocks.i.attn weights."""
        attention_module_inputs(x, params, cu_seqlens, rotary, num_heads, self.capabilities["rotary"])
        return _attention.attention_module(x, params, cu_seqlens, rotary, num_heads)

    def vision_block(self, x, params, cu_seqlens, rotary, num_heads, eps=1e-6):
        """One pre-norm block; rotary is the angles (N, head_dim/2) this target declares."""
        vision_block_inputs(x, params, cu_seqlens, rotary, num_heads, eps, self.capabilities["rotary"])
        return _block.vision_block(x, params, cu_seqlens, rotary, num_heads, eps)

    def window_index(self, grid_thw, window_size=112, patch_size=14, merge_size=2):
        window_index_inputs(grid_thw, window_size, patch_size, merge_size)
        return _windows.window_index(grid_thw, window_size, patch_size, merge_size)

    def cu_seqlens(self, grid_thw, merge_size=2):
        cu_seqlens_inputs(grid_thw, merge_size)
        return _windows.cu_seqlens(grid_thw, merge_size)

    def attention(self, q, k, v, cu_seqlens):
        attention_inputs(q, k, v, cu_seqlens)
        return _attention.attention(q, k, v, cu_seqlens)

    def rms_norm(self, x, weight, eps=1e-6):
        rms_norm_inputs(x, weight, eps)
        return _block.rms_norm(x, weight, eps)

    def mlp(self, x, params):
        mlp_inputs(x, params)
        return _block.mlp(x, params)

    def merger(self, x, params, merge_size=2, eps=1e-6):
        merger_inputs(x, params, merge_size, eps)
        return _merger.merger(x, params, merge_size, eps)

    def vision_tower(self, pixel_values, grid_thw, weights, config):
        vision_tower_inputs(pixel_values, grid_thw, weights, config)
        return _tower.vision_tower(pixel_values, grid_thw, weights, config)

    def num_image_tokens(self, grid_thw, merge_size=2):
        num_image_tokens_inputs(grid_thw, merge_size)
        return _tokens.num_image_tokens(grid_thw, merge_size)
