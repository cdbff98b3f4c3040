"""HF transformers as a port: each stage is HF's own Qwen2.5-VL vision code, on the CPU, run unchanged.

    pip install 'vitspec[hf]'
    vitspec verify --target vitspec.adapters.hf:TARGET [--dtype bfloat16]

Stages and the HF code behind each (transformers 5.x):
- rotary_position_ids, cu_seqlens, window_index: ``transformers.vision_utils.get_vision_position_ids``,
  ``get_vision_cu_seqlens``, ``get_vision_window_index`` (what ``Qwen2_5_VisionTransformerPretrainedModel``
  calls);
- rotary_cos_sin (transformers >= 5.17): ``Qwen2_5_VLVisionRotaryEmbedding``, cos and sin each (N, head_dim) from
  position ids; rotary_angles (5.9 to 5.16): ``Qwen2_5_VisionRotaryEmbedding``, the angles (N, head_dim/2) that
  ``rot_pos_emb`` returns, turned into cos and sin inline in the model's forward. Either way the blocks take
  (cos, sin): ``rotary="cos_sin"``; apply_rotary: ``apply_rotary_pos_emb_vision``;
- patch_embed, attention_module, rms_norm, mlp, vision_block, merger, vision_tower: ``Qwen2_5_VisionPatchEmbed``,
  ``Qwen2_5_VLVisionAttention`` (sdpa per segment), ``Qwen2_5_VLRMSNorm``, ``Qwen2_5_VLMLP``,
  ``Qwen2_5_VLVisionBlock``, ``Qwen2_5_VLPatchMerger`` and ``Qwen2_5_VisionTransformerPretrainedModel``
  (``pooler_output``), loaded with the given weights;
- smart_resize, preprocess (images): the PIL image processor ``Qwen2VLImageProcessorPil`` and its module's
  ``smart_resize`` (HF's variant only). HF's video processor needs torchvision, which does not import beside
  the CPU torch here: videos are not covered.

Precision: the default dtype is float32, HF's own precision: HF computes RMSNorm statistics, the rotary angles
and their application in float32 whatever the model dtype, so a float64 run carries float32 rounding in those
steps (tests/tolerance.py, HF_FLOAT64 holds the measured size; tests/test_upstream_hf.py compares HF's float64
modules with the reference under that bound). ``--dtype bfloat16`` runs HF's modules in bfloat16, as HF does.

HF does not validate its inputs (bad shapes broadcast, truncate or fail deep inside torch): ``validates_inputs``
is False, so the bad-input checks are not covered. num_image_tokens is inline in HF (the processor's grid and the
prompt builder): declared in ``capabilities["inline"]``.
"""

from __future__ import annotations

import numpy as np
import torch

from vitspec.adapters.hf_loading import (
    DTYPES,
    hf_config,
    loaded,
    modeling,
    pil_processing,
    to_numpy,
    to_torch,
    vision_utils,
)


def _grid(grid_thw) -> torch.Tensor:
    return to_torch(np.asarray(grid_thw).reshape(-1, 3), torch.int64)


class HFTarget:
    """HF's Qwen2.5-VL vision stages on the CPU, float32 by default."""

    device = "cpu"
    capabilities = {
        "rotary": "cos_sin",
        "smart_resize_variants": ("hf",),
        "media": ("image",),
        "validates_inputs": False,
        "inline": {
            "num_image_tokens": "computed inline by HF's processor and prompt builder (grid_thw.prod() // "
            "merge_size**2); checked through preprocess's grid_thw"
        },
    }

    def __init__(self, dtype: str = "float32"):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        import transformers

        self.dtype, self.torch_dtype = dtype, DTYPES[dtype]
        self.version = transformers.__version__
        self.name = f"hf-transformers {self.version}"

    def with_options(self, device: str = "cpu", dtype: str | None = None):
        if device != "cpu":
            raise ValueError(f"the HF adapter runs on device='cpu' only, got {device!r}")
        return type(self)(dtype or self.dtype)

    def _in(self, x) -> torch.Tensor:
        return to_torch(x, self.torch_dtype)

    def _module(self, module, params):
        return loaded(module, params, self.torch_dtype)

    # ---- index stages: HF's vision_utils ---------------------------------------------------------------
    def rotary_position_ids(self, grid_thw, merge_size=2):
        return to_numpy(vision_utils.get_vision_position_ids(_grid(grid_thw), int(merge_size)))

    def cu_seqlens(self, grid_thw):
        return to_numpy(vision_utils.get_vision_cu_seqlens(_grid(grid_thw)))

    def window_index(self, grid_thw, window_size=112, patch_size=14, merge_size=2):
        index, cu = vision_utils.get_vision_window_index(
            _grid(grid_thw), int(merge_size), int(window_size), int(patch_size)
        )
        return to_numpy(index), to_numpy(cu)

    # ---- preprocessing: the PIL image processor ---------------------------------------------------------
    def smart_resize(self, height, width, factor=28, min_pixels=3136, max_pixels=12845056, variant="hf"):
        if variant != "hf":
            raise ValueError(f"HF has only its own smart_resize (variant 'hf'), got variant={variant!r}")
        return tuple(pil_processing.smart_resize(height, width, factor, min_pixels=min_pixels, max_pixels=max_pixels))

    def preprocess(
        self, media, image_min_pixels=3136, image_max_pixels=12845056, video_min_pixels=3136, video_max_pixels=12845056
    ):
        if any(np.asarray(m).ndim == 4 for m in media):
            raise ValueError("the HF adapter preprocesses images only (HF's video processor needs torchvision)")
        from PIL import Image

        processor = pil_processing.Qwen2VLImageProcessorPil(min_pixels=image_min_pixels, max_pixels=image_max_pixels)
        # PIL images, as users hand them over: HF guesses the channel axis of a bare array, and a (1, s, 3) or
        # (s, 1, 3) array is read as channels-first
        out = processor(images=[Image.fromarray(np.asarray(m)) for m in media], return_tensors="np")
        return np.asarray(out["pixel_values"], dtype=np.float64), np.asarray(out["image_grid_thw"], dtype=np.int64)

    # ---- numeric stages: HF's modules -------------------------------------------------------------------
    @torch.no_grad()
    def patch_embed(self, pixel_values, weight):
        D, C, T, P, _ = np.asarray(weight).shape
        embed = self._module(modeling.Qwen2_5_VisionPatchEmbed(P, T, C, D), {"proj.weight": weight})
        return to_numpy(embed(self._in(pixel_values)))

    def _rotary(self, rotary):
        cos, sin = rotary
        return to_torch(cos, torch.float32), to_torch(sin, torch.float32)  # HF's cos and sin are float32

    @torch.no_grad()
    def apply_rotary(self, x, rotary):
        x = self._in(x)
        return to_numpy(modeling.apply_rotary_pos_emb_vision(x, x, *self._rotary(rotary))[0])

    @torch.no_grad()
    def attention_module(self, x, params, cu_seqlens, rotary, num_heads):
        attn = modeling.Qwen2_5_VLVisionAttention(
            hf_config(hidden_size=int(np.asarray(x).shape[1]), num_heads=int(num_heads))
        )
        attn = self._module(attn, params)
        return to_numpy(
            attn(self._in(x), cu_seqlens=to_torch(cu_seqlens, torch.int32), position_embeddings=self._rotary(rotary))
        )

    @torch.no_grad()
    def rms_norm(self, x, weight, eps=1e-6):
        norm = modeling.Qwen2_5_VLRMSNorm(len(weight), float(eps))
        return to_numpy(self._module(norm, {"weight": weight})(self._in(x)))

    @torch.no_grad()
    def mlp(self, x, params):
        config = hf_config(
            hidden_size=int(np.asarray(x).shape[1]),
            num_heads=1,
            hidden_act="silu",
            intermediate_size=int(np.asarray(params["gate_proj.weight"]).shape[0]),
        )
        return to_numpy(self._module(modeling.Qwen2_5_VLMLP(config, bias=True), params)(self._in(x)))

    @torch.no_grad()
    def vision_block(self, x, params, cu_seqlens, rotary, num_heads, eps=1e-6):
        config = hf_config(
            hidden_size=int(np.asarray(x).shape[1]),
            num_heads=int(num_heads),
            hidden_act="silu",
            intermediate_size=int(np.asarray(params["mlp.gate_proj.weight"]).shape[0]),
        )
        block = self._module(modeling.Qwen2_5_VLVisionBlock(config), params)
        block.norm1.variance_epsilon = block.norm2.variance_epsilon = float(eps)  # HF hard-codes 1e-6
        return to_numpy(
            block(self._in(x), cu_seqlens=to_torch(cu_seqlens, torch.int32), position_embeddings=self._rotary(rotary))
        )

    @torch.no_grad()
    def merger(self, x, params, merge_size=2, eps=1e-6):
        out_dim, D = int(np.asarray(params["mlp.2.weight"]).shape[0]), int(np.asarray(x).shape[1])
        merger = self._module(modeling.Qwen2_5_VLPatchMerger(out_dim, D, int(merge_size)), params)
        merger.ln_q.variance_epsilon = float(eps)
        return to_numpy(merger(self._in(x)))

    @torch.no_grad()
    def vision_tower(self, pixel_values, grid_thw, weights, config):
        model = modeling.Qwen2_5_VisionTransformerPretrainedModel._from_config(hf_config(**config))
        model = self._module(model, weights)
        return to_numpy(model(self._in(pixel_values), _grid(grid_thw)).pooler_output)


class HFCosSin(HFTarget):
    """transformers >= 5.17: ``Qwen2_5_VLVisionRotaryEmbedding`` makes cos and sin from position ids."""

    @torch.no_grad()
    def rotary_cos_sin(self, position_ids, head_dim, theta=10000.0):
        config = hf_config(
            hidden_size=int(head_dim), num_heads=1, rope_parameters={"rope_type": "axial", "rope_theta": float(theta)}
        )
        rope = modeling.Qwen2_5_VLVisionRotaryEmbedding(config)
        cos, sin = rope(torch.zeros(1, dtype=self.torch_dtype), to_torch(position_ids, torch.int64))
        return to_numpy(cos), to_numpy(sin)


class HFAngles(HFTarget):
    """transformers 5.9 to 5.16: ``Qwen2_5_VisionRotaryEmbedding(dim, theta)(position_ids)`` returns the angles
    (N, head_dim/2), what ``rot_pos_emb`` returns; the model turns them into cos and sin inline before the blocks,
    so the blocks still take (cos, sin)."""

    @torch.no_grad()
    def rotary_angles(self, position_ids, head_dim, theta=10000.0):
        rope = modeling.Qwen2_5_VisionRotaryEmbedding(int(head_dim) // 2, float(theta))
        return to_numpy(rope(to_torch(position_ids, torch.int64)))


def hf_target(dtype: str = "float32") -> HFTarget:
    """The HF target of the installed transformers (its rotary stage is the one that release has)."""
    return (HFCosSin if hasattr(modeling, "Qwen2_5_VLVisionRotaryEmbedding") else HFAngles)(dtype)


TARGET = hf_target  # a factory: load_target calls it
