"""HF transformers as a port: each stage is HF's own Qwen2.5-VL vision code, on the CPU, run unchanged.

    pip install 'vitspec[hf]'
    vitspec verify --target vitspec.adapters.hf:TARGET [--dtype bfloat16]

``TARGET`` picks the target of the installed release (transformers 4.49, the first with Qwen2.5-VL, on); each
stage is the HF function or module of that release (vitspec/adapters/hf_loading.py resolves where each lives):
- rotary_position_ids, cu_seqlens, window_index: from 5.9 ``transformers.vision_utils.get_vision_position_ids``,
  ``get_vision_cu_seqlens``, ``get_vision_window_index`` (what ``Qwen2_5_VisionTransformerPretrainedModel``
  calls). Before 5.9 (``HFModelMethods``) the vision model's own methods: window_index is ``get_window_index``;
  rotary_position_ids is ``rot_pos_emb`` of a model whose rotary table is the identity (one frequency, 1.0: the
  row HF gathers at position p is p, so rot_pos_emb returns the ids it computed); cu_seqlens is computed inline in
  the model's ``forward`` (declared in ``capabilities["inline"]``, checked through vision_tower);
- rotary_cos_sin (transformers >= 5.17): ``Qwen2_5_VLVisionRotaryEmbedding``, cos and sin each (N, head_dim) from
  position ids; rotary_angles (4.49 to 5.16): ``Qwen2_5_VisionRotaryEmbedding``, the angles (N, head_dim/2) that
  ``rot_pos_emb`` returns (up to 5.8 the module returns the table of rows 0..n-1, which rot_pos_emb reads at the
  ids), turned into cos and sin inline in the model's forward. Either way the blocks take (cos, sin):
  ``rotary="cos_sin"``; apply_rotary: ``apply_rotary_pos_emb_vision``;
- patch_embed, attention_module, rms_norm, mlp, vision_block, merger, vision_tower: ``Qwen2_5_VisionPatchEmbed``,
  the vision attention (sdpa: ``Qwen2_5_VLVisionSdpaAttention`` up to 4.52, ``Qwen2_5_VLVisionAttention`` after,
  with the model's own segment mask in 4.53), ``Qwen2_5_VLRMSNorm`` (``Qwen2RMSNorm`` in 4.x), ``Qwen2_5_VLMLP``,
  ``Qwen2_5_VLVisionBlock``, ``Qwen2_5_VLPatchMerger`` and ``Qwen2_5_VisionTransformerPretrainedModel``
  (its output in 4.x, ``pooler_output`` in 5.x), loaded with the given weights;
- smart_resize, preprocess (images): the image processor without torchvision (``Qwen2VLImageProcessorPil`` from 5.4,
  ``Qwen2VLImageProcessor`` before) and its module's ``smart_resize`` (HF's variant only). HF's video processor
  needs torchvision, which does not import beside the CPU torch here: videos are not covered.

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
    ImageProcessor,
    RMSNorm,
    hf_config,
    image_processing,
    index_model,
    loaded,
    modeling,
    segment_mask,
    to_numpy,
    to_torch,
    vision_attention,
    vision_utils,
)

INLINE_NUM_IMAGE_TOKENS = (
    "computed inline by HF's processor and prompt builder (grid_thw.prod() // merge_size**2); checked through "
    "preprocess's grid_thw"
)


def _grid(grid_thw) -> torch.Tensor:
    return to_torch(np.asarray(grid_thw).reshape(-1, 3), torch.int64)


class HFTarget:
    """HF's Qwen2.5-VL vision stages on the CPU, float32 by default: the stages every release has as a module or
    function (the index and rotary stages are in the subclasses, one per layout)."""

    device = "cpu"
    capabilities = {
        "rotary": "cos_sin",
        "smart_resize_variants": ("hf",),
        "media": ("image",),
        "validates_inputs": False,
        "inline": {"num_image_tokens": INLINE_NUM_IMAGE_TOKENS},
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

    # ---- preprocessing: the image processor without torchvision -----------------------------------------
    def smart_resize(self, height, width, factor=28, min_pixels=3136, max_pixels=12845056, variant="hf"):
        if variant != "hf":
            raise ValueError(f"HF has only its own smart_resize (variant 'hf'), got variant={variant!r}")
        return tuple(image_processing.smart_resize(height, width, factor, min_pixels=min_pixels, max_pixels=max_pixels))

    def preprocess(
        self, media, image_min_pixels=3136, image_max_pixels=12845056, video_min_pixels=3136, video_max_pixels=12845056
    ):
        if any(np.asarray(m).ndim == 4 for m in media):
            raise ValueError("the HF adapter preprocesses images only (HF's video processor needs torchvision)")
        from PIL import Image

        processor = ImageProcessor(min_pixels=image_min_pixels, max_pixels=image_max_pixels)
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
        config = hf_config(hidden_size=int(np.asarray(x).shape[1]), num_heads=int(num_heads))
        attn = self._module(vision_attention(config), params)
        x, cu_seqlens = self._in(x), to_torch(cu_seqlens, torch.int32)
        return to_numpy(
            attn(x, cu_seqlens=cu_seqlens, position_embeddings=self._rotary(rotary), **segment_mask(x, cu_seqlens))
        )

    @torch.no_grad()
    def rms_norm(self, x, weight, eps=1e-6):
        norm = RMSNorm(len(weight), float(eps))
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
        block = self._module(modeling.Qwen2_5_VLVisionBlock(config), params)  # sdpa: every release's default
        block.norm1.variance_epsilon = block.norm2.variance_epsilon = float(eps)  # HF hard-codes 1e-6
        x, cu_seqlens = self._in(x), to_torch(cu_seqlens, torch.int32)
        return to_numpy(
            block(x, cu_seqlens=cu_seqlens, position_embeddings=self._rotary(rotary), **segment_mask(x, cu_seqlens))
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
        out = model(self._in(pixel_values), _grid(grid_thw))
        return to_numpy(getattr(out, "pooler_output", out))  # 5.x: an output record; 4.x: the merged tensor


class HFIndexFunctions(HFTarget):
    """transformers >= 5.9: the index stages are ``transformers.vision_utils`` functions."""

    def rotary_position_ids(self, grid_thw, merge_size=2):
        return to_numpy(vision_utils.get_vision_position_ids(_grid(grid_thw), int(merge_size)))

    def cu_seqlens(self, grid_thw):
        return to_numpy(vision_utils.get_vision_cu_seqlens(_grid(grid_thw)))

    def window_index(self, grid_thw, window_size=112, patch_size=14, merge_size=2):
        index, cu = vision_utils.get_vision_window_index(
            _grid(grid_thw), int(merge_size), int(window_size), int(patch_size)
        )
        return to_numpy(index), to_numpy(cu)


class HFCosSin(HFIndexFunctions):
    """transformers >= 5.17: ``Qwen2_5_VLVisionRotaryEmbedding`` makes cos and sin from position ids."""

    @torch.no_grad()
    def rotary_cos_sin(self, position_ids, head_dim, theta=10000.0):
        config = hf_config(
            hidden_size=int(head_dim), num_heads=1, rope_parameters={"rope_type": "axial", "rope_theta": float(theta)}
        )
        rope = modeling.Qwen2_5_VLVisionRotaryEmbedding(config)
        cos, sin = rope(torch.zeros(1, dtype=self.torch_dtype), to_torch(position_ids, torch.int64))
        return to_numpy(cos), to_numpy(sin)


class HFAngles(HFIndexFunctions):
    """transformers 5.9 to 5.16: ``Qwen2_5_VisionRotaryEmbedding(dim, theta)(position_ids)`` returns the angles
    (N, head_dim/2), what ``rot_pos_emb`` returns; the model turns them into cos and sin inline before the blocks,
    so the blocks still take (cos, sin)."""

    @torch.no_grad()
    def rotary_angles(self, position_ids, head_dim, theta=10000.0):
        rope = modeling.Qwen2_5_VisionRotaryEmbedding(int(head_dim) // 2, float(theta))
        return to_numpy(rope(to_torch(position_ids, torch.int64)))


class HFModelMethods(HFTarget):
    """Releases without ``transformers.vision_utils`` (4.49 to 4.57 in the matrix): the index stages are methods of
    ``Qwen2_5_VisionTransformerPretrainedModel``; cu_seqlens has none (inline in its forward)."""

    capabilities = {
        **HFTarget.capabilities,
        "inline": {
            **HFTarget.capabilities["inline"],
            "cu_seqlens": "computed inline in Qwen2_5_VisionTransformerPretrainedModel.forward (grid_thw's h*w "
            "repeated t times, cumsum, a leading 0); no function of its own before transformers.vision_utils (5.9); "
            "checked through vision_tower",
        },
    }

    @torch.no_grad()
    def rotary_position_ids(self, grid_thw, merge_size=2):
        ids = index_model(merge_size=int(merge_size)).rot_pos_emb(_grid(grid_thw))  # float rows [row, col]
        out = ids.round().to(torch.int64)
        if not torch.equal(out.to(ids.dtype), ids):  # the identity table holds integers exactly up to 2**24
            raise ValueError(f"position ids beyond float32's exact integers: max {float(ids.max())}")
        return to_numpy(out)

    @torch.no_grad()
    def window_index(self, grid_thw, window_size=112, patch_size=14, merge_size=2):
        model = index_model(merge_size=int(merge_size), window_size=int(window_size), patch_size=int(patch_size))
        index, cu = model.get_window_index(_grid(grid_thw))
        return to_numpy(index), np.asarray(cu, dtype=np.int64)

    @torch.no_grad()
    def rotary_angles(self, position_ids, head_dim, theta=10000.0):
        """HF's table ``Qwen2_5_VisionRotaryEmbedding(head_dim/2, theta)(n)`` (rows 0..n-1), read at the ids as
        ``rot_pos_emb`` reads it (``rotary_pos_emb_full[pos_ids].flatten(1)``)."""
        ids = to_torch(position_ids, torch.int64)
        rope = modeling.Qwen2_5_VisionRotaryEmbedding(int(head_dim) // 2, float(theta))
        table = rope(int(ids.max()) + 1 if ids.numel() else 1)
        return to_numpy(table[ids].flatten(1))


def hf_target(dtype: str = "float32") -> HFTarget:
    """The HF target of the installed transformers (its index and rotary stages are the ones that release has)."""
    if vision_utils is None:
        return HFModelMethods(dtype)
    return (HFCosSin if hasattr(modeling, "Qwen2_5_VLVisionRotaryEmbedding") else HFAngles)(dtype)


TARGET = hf_target  # a factory: load_target calls it
