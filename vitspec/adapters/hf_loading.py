"""Loading HF transformers' Qwen2.5-VL vision modules for vitspec.adapters.hf: imports, configs, tensors, weights.

Nothing here computes a stage: it builds HF's own modules from a config and a state dict, and converts arrays.
"""

from __future__ import annotations

import numpy as np

try:
    import torch
    from transformers import vision_utils
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as modeling
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_vl import image_processing_pil_qwen2_vl as pil_processing
except ImportError as e:  # the adapter is useless without transformers: say so when it is loaded
    raise ImportError(
        f"vitspec.adapters.hf needs transformers 5.x with Qwen2.5-VL, transformers.vision_utils and the "
        f"PIL image processor (pip install 'vitspec[hf]'): {e}"
    ) from e

__all__ = ["DTYPES", "hf_config", "loaded", "modeling", "pil_processing", "to_numpy", "to_torch", "vision_utils"]

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
    config._attn_implementation = "sdpa"
    return config


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
