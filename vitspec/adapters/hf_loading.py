"""Loading HF transformers' Qwen2.5-VL vision modules for vitspec.adapters.hf: imports, configs, tensors, weights.

Nothing here computes a stage: it builds HF's own modules from a config and a state dict, and converts arrays. The
releases differ in where things live and how modules are built; each difference is resolved here, by what the
installed release has (never by its version number):

- the index stages: ``transformers.vision_utils`` functions from 5.9 (``vision_utils``), methods of
  ``Qwen2_5_VisionTransformerPretrainedModel`` before (``rot_pos_emb``, ``get_window_index``; ``vision_utils`` is
  None);
- the image processor without torchvision: ``Qwen2VLImageProcessorPil`` (module ``image_processing_pil_qwen2_vl``)
  from 5.4, the NumPy + PIL ``Qwen2VLImageProcessor`` (module ``image_processing_qwen2_vl``) before (from 5.4 that
  module is the torchvision one);
- RMSNorm: ``Qwen2_5_VLRMSNorm`` where the module defines it (5.8 does, 5.0 does not), else ``Qwen2RMSNorm``
  (in 4.x defined in the module up to 4.55, imported from qwen2 after);
- the vision attention (``vision_attention``, ``segment_mask``): 4.49 to 4.52 one class per implementation
  (``Qwen2_5_VLVisionSdpaAttention(dim, num_heads)`` builds its own mask from cu_seqlens); 4.53 one
  ``Qwen2_5_VLVisionAttention(config)`` through ``ALL_ATTENTION_FUNCTIONS`` that needs the mask the vision model
  builds (``_prepare_attention_mask``); 4.54 on the same class splits the sequence at cu_seqlens itself.
"""

from __future__ import annotations

import functools

import numpy as np

try:
    import torch
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as modeling
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
except ImportError as e:  # the adapter is useless without transformers: say so when it is loaded
    raise ImportError(
        f"vitspec.adapters.hf needs transformers >= 4.49 (the first with Qwen2.5-VL; pip install 'vitspec[hf]'): {e}"
    ) from e
try:  # 5.9 on: the index stages as functions
    from transformers import vision_utils
except ImportError:  # before: methods of the vision model
    vision_utils = None
try:  # 5.4 on: the PIL image processor
    from transformers.models.qwen2_vl import image_processing_pil_qwen2_vl as image_processing

    ImageProcessor = image_processing.Qwen2VLImageProcessorPil
except ImportError:  # before: the NumPy + PIL ("slow") image processor, what users without torchvision get
    from transformers.models.qwen2_vl import image_processing_qwen2_vl as image_processing

    ImageProcessor = image_processing.Qwen2VLImageProcessor

__all__ = [
    "DTYPES",
    "ImageProcessor",
    "RMSNorm",
    "hf_config",
    "image_processing",
    "index_model",
    "loaded",
    "modeling",
    "segment_mask",
    "to_numpy",
    "to_torch",
    "vision_attention",
    "vision_utils",
]

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ATTN_IMPLEMENTATION = "sdpa"  # HF's default on the CPU
RMSNorm = getattr(modeling, "Qwen2_5_VLRMSNorm", None) or modeling.Qwen2RMSNorm


def to_torch(x, dtype=torch.float64) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", dtype)
    return torch.as_tensor(np.asarray(x)).to(dtype)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """Float outputs as float64 NumPy (bf16 has no NumPy dtype), integers as int64."""
    x = x.detach().cpu()
    return x.double().numpy() if x.is_floating_point() else x.numpy().astype(np.int64)


def hf_config(**fields) -> Qwen2_5_VLVisionConfig:
    """An HF vision config from HF's field names, attention implementation sdpa."""
    config = Qwen2_5_VLVisionConfig(**{k: v for k, v in fields.items() if k != "tokens_per_second"})
    config._attn_implementation = ATTN_IMPLEMENTATION
    return config


def vision_attention(config):
    """The vision attention module a Qwen2_5_VLVisionBlock of this release builds for sdpa."""
    if hasattr(modeling, "Qwen2_5_VLVisionSdpaAttention"):  # 4.49 to 4.52: one class per implementation
        return modeling.Qwen2_5_VLVisionSdpaAttention(config.hidden_size, num_heads=config.num_heads)
    return modeling.Qwen2_5_VLVisionAttention(config)


@functools.cache
def index_model(merge_size: int = 2, window_size: int = 112, patch_size: int = 14):
    """A vision model of this release, no blocks, head_dim 4: for its own index methods (releases without
    vision_utils) and its attention mask. Its rotary table has one frequency, 1.0 (Qwen2_5_VisionRotaryEmbedding(2)),
    so row p of the table is p: rot_pos_emb returns the position ids it gathers at, as floats."""
    config = hf_config(
        depth=0,
        hidden_size=4,
        num_heads=1,
        intermediate_size=4,
        out_hidden_size=4,
        spatial_merge_size=merge_size,
        window_size=window_size,
        patch_size=patch_size,
        fullatt_block_indexes=[],
    )
    return modeling.Qwen2_5_VisionTransformerPretrainedModel._from_config(config).eval()


def segment_mask(x: torch.Tensor, cu_seqlens: torch.Tensor) -> dict:
    """Keyword arguments that confine a vision attention (or block) call to the cu_seqlens segments: the mask the
    vision model builds (``_prepare_attention_mask``) where the release's attention takes one (4.53), else none (the
    attention builds its own mask, 4.49 to 4.52, or splits at cu_seqlens, 4.54 on)."""
    model = modeling.Qwen2_5_VisionTransformerPretrainedModel
    if not hasattr(model, "_prepare_attention_mask"):
        return {}
    return {"attention_mask": index_model()._prepare_attention_mask(x, cu_seqlens)}


def loaded(module, params: dict, dtype):
    """The module in dtype, eval mode, with its state dict replaced by params (strict: every key, no extra).

    Non-persistent buffers (the rotary inv_freq) keep the dtype HF built them in, as from_pretrained(torch_dtype=...)
    leaves them: module.to(dtype) alone would round them to bf16, which HF's users never see."""
    kept = {name: buf.clone() for name, buf in module.named_buffers() if name not in module.state_dict()}
    module = module.to(dtype).eval()
    for name, buf in kept.items():
        owner, _, leaf = name.rpartition(".")
        (module.get_submodule(owner) if owner else module)._buffers[leaf] = buf
    module.load_state_dict({k: to_torch(v, dtype) for k, v in params.items()}, strict=True)
    return module
