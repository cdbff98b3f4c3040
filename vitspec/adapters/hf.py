"""HF transformers as a target: the stages its Qwen2.5-VL vision code exposes, on the CPU.

By default it runs in float64 as an oracle. HF computes the RMSNorm statistics, the vision RoPE angles and the
RoPE application in float32 even when the model is float64; ``float64_islands()`` replaces those three
functions, for as long as it is active, by the same formulas in the input's dtype (HF's own rotate_half and
frequency layout are kept), and every float64 stage runs inside it. In float32, bfloat16 or float16
(``--dtype``) HF's modules run unchanged in that dtype: the real upstream numerics. Attention implementation
"sdpa". Stages HF does not expose (num_image_tokens, the preprocessing stages) are absent, so the suite reports
them as not covered. HF does not check its inputs (bad shapes or dtypes broadcast, truncate or fail deep inside
torch), so the adapter applies the protocol's input rules first, by running the reference stage on the same
arguments and keeping only its errors; every returned value is HF's own.

    vitspec verify --target vitspec.adapters.hf:TARGET [--dtype bfloat16]
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np

try:
    import torch
    from transformers import vision_utils
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as hf
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
except ImportError as e:  # the adapter is useless without transformers: say so when it is loaded
    raise ImportError(f"vitspec.adapters.hf needs transformers 5.x (Qwen2.5-VL and transformers.vision_utils): {e}") from e



def _rms_norm_forward(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def _rope_forward(self, x, position_ids):
    spatial = 2 * self.inv_freq.numel()
    theta = self.config.rope_parameters["rope_theta"]
    inv_freq = 1.0 / theta ** (torch.arange(0, spatial, 2, dtype=torch.float64) / spatial)
    freqs = position_ids[..., None].to(torch.float64) * inv_freq.to(x.device)
    return self.recomposition_frequencies(freqs.cos()), self.recomposition_frequencies(freqs.sin())


def _apply_rope(q, k, cos, sin):
    cos, sin = cos.unsqueeze(-2).to(q.dtype), sin.unsqueeze(-2).to(q.dtype)
    return q * cos + hf.rotate_half(q) * sin, k * cos + hf.rotate_half(k) * sin


@contextlib.contextmanager
def float64_islands():
    """Run HF's RMSNorm, vision RoPE and RoPE application in the input's dtype instead of float32 (restored after)."""
    saved = (hf.Qwen2_5_VLRMSNorm.forward, hf.Qwen2_5_VLVisionRotaryEmbedding.forward, hf.apply_rotary_pos_emb_vision)
    hf.Qwen2_5_VLRMSNorm.forward = _rms_norm_forward
    hf.Qwen2_5_VLVisionRotaryEmbedding.forward = _rope_forward
    hf.apply_rotary_pos_emb_vision = _apply_rope
    try:
        yield
    finally:
        (hf.Qwen2_5_VLRMSNorm.forward, hf.Qwen2_5_VLVisionRotaryEmbedding.forward,
         hf.apply_rotary_pos_emb_vision) = saved


def _numeric(method):
    """Run a stage without autograd, under float64_islands when the target is float64, after the input rules."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        _input_rules(method.__name__, args, kwargs)
        islands = float64_islands() if self.dtype == "float64" else contextlib.nullcontext()
        with islands, torch.no_grad():
            return method(self, *args, **kwargs)
    return run


def _input_rules(stage: str, args, kwargs) -> None:
    """The protocol's TypeError/ValueError for bad input, raised by the reference stage before HF runs."""
    from vitspec.reference import TARGET as REFERENCE
    getattr(REFERENCE, stage)(*args, **kwargs)


DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _t(x, dtype=torch.float64) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", dtype)
    return torch.as_tensor(np.asarray(x)).to(dtype)


def _np(x: torch.Tensor) -> np.ndarray:
    """Float outputs as float64 NumPy (bf16 has no NumPy dtype), integers as they are."""
    x = x.detach().cpu()
    return (x.double() if x.is_floating_point() else x).numpy()


def hf_config(**fields) -> Qwen2_5_VLVisionConfig:
    """An HF vision config from HF's field names, attention implementation sdpa."""
    config = Qwen2_5_VLVisionConfig(**{k: v for k, v in fields.items() if k != "tokens_per_second"})
    config._attn_implementation = "sdpa"
    return config


def _loaded(module, params: dict, dtype=torch.float64):
    """The module in dtype with its state dict replaced by params (strict: every key, no extra)."""
    module = module.to(dtype).eval()
    module.load_state_dict({k: _t(v, dtype) for k, v in params.items()}, strict=True)
    return module


def _block_config(params: dict, hidden: int, num_heads: int):
    return hf_config(hidden_size=hidden, num_heads=num_heads, hidden_act="silu",
                     intermediate_size=int(params["mlp.gate_proj.weight"].shape[0]) if "mlp.gate_proj.weight" in params
                     else int(params["gate_proj.weight"].shape[0]))


class HFTarget:
    """The HF stages on the CPU, float64 (islands lifted) by default."""

    name = "hf-transformers"
    device = "cpu"

    def __init__(self, dtype: str = "float64"):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        self.dtype, self.torch_dtype = dtype, DTYPES[dtype]
        self._rope = torch.float64 if dtype == "float64" else torch.float32  # the dtype of HF's cos and sin

    def with_options(self, device: str = "cpu", dtype: str | None = None):
        if device != "cpu":
            raise ValueError(f"the HF adapter runs on device='cpu' only, got {device!r}")
        return HFTarget(dtype or self.dtype)

    def _in(self, x) -> torch.Tensor:
        return _t(x, self.torch_dtype)

    def _module(self, module, params):
        return _loaded(module, params, self.torch_dtype)

    def rotary_position_ids(self, grid_thw, merge_size=2):
        _input_rules("rotary_position_ids", (grid_thw, merge_size), {})
        return _np(vision_utils.get_vision_position_ids(_t(grid_thw, torch.int64).reshape(-1, 3), merge_size))

    def cu_seqlens(self, grid_thw):
        _input_rules("cu_seqlens", (grid_thw,), {})
        return _np(vision_utils.get_vision_cu_seqlens(_t(grid_thw, torch.int64).reshape(-1, 3))).astype(np.int64)

    def window_index(self, grid_thw, window_size=112, patch_size=14, merge_size=2):
        _input_rules("window_index", (grid_thw, window_size, patch_size, merge_size), {})
        index, cu = vision_utils.get_vision_window_index(_t(grid_thw, torch.int64).reshape(-1, 3), merge_size,
                                                         window_size, patch_size)
        return _np(index).astype(np.int64), _np(cu).astype(np.int64)

    @_numeric
    def patch_embed(self, pixel_values, weight):
        D, C, T, P, _ = weight.shape
        embed = self._module(hf.Qwen2_5_VisionPatchEmbed(P, T, C, D), {"proj.weight": weight})
        return _np(embed(self._in(pixel_values)))

    @_numeric
    def rotary_cos_sin(self, position_ids, head_dim, theta=10000.0):
        config = hf_config(hidden_size=head_dim, num_heads=1, rope_parameters={"rope_type": "axial",
                                                                               "rope_theta": theta})
        cos, sin = hf.Qwen2_5_VLVisionRotaryEmbedding(config)(torch.zeros(1, dtype=self.torch_dtype),
                                                              _t(position_ids, torch.int64))
        return _np(cos), _np(sin)

    @_numeric
    def apply_rotary(self, x, cos, sin):
        x = self._in(x)
        return _np(hf.apply_rotary_pos_emb_vision(x, x, _t(cos, self._rope), _t(sin, self._rope))[0])

    @_numeric
    def attention(self, q, k, v, cu_seqlens):
        """HF's non-flash path: sdpa on each segment of (1, heads, length, head_dim), concatenated."""
        N, H, d = q.shape
        module = hf.Qwen2_5_VLVisionAttention(hf_config(hidden_size=H * d, num_heads=H))
        lengths = np.diff(np.asarray(cu_seqlens)).tolist()
        parts = [torch.split(self._in(a).transpose(0, 1).unsqueeze(0), lengths, dim=2) for a in (q, k, v)]
        outs = [sdpa_attention_forward(module, qs, ks, vs, None, scaling=module.scaling, is_causal=False)[0]
                for qs, ks, vs in zip(*parts) if qs.shape[2] > 0]  # HF's sdpa fails on an empty segment
        return _np(torch.cat(outs, dim=1)[0])

    @_numeric
    def rms_norm(self, x, weight, eps=1e-6):
        return _np(self._module(hf.Qwen2_5_VLRMSNorm(len(weight), eps), {"weight": weight})(self._in(x)))

    @_numeric
    def mlp(self, x, params):
        config = _block_config(params, int(x.shape[1]), 1)
        return _np(self._module(hf.Qwen2_5_VLMLP(config, bias=True), params)(self._in(x)))

    @_numeric
    def vision_block(self, x, params, cu_seqlens, cos, sin, num_heads, eps=1e-6):
        block = self._module(hf.Qwen2_5_VLVisionBlock(_block_config(params, int(x.shape[1]), num_heads)), params)
        block.norm1.variance_epsilon = block.norm2.variance_epsilon = eps
        return _np(block(self._in(x), cu_seqlens=_t(cu_seqlens, torch.int32),
                         position_embeddings=(_t(cos, self._rope), _t(sin, self._rope))))

    @_numeric
    def merger(self, x, params, merge_size=2, eps=1e-6):
        out_dim, D = int(params["mlp.2.weight"].shape[0]), int(x.shape[1])
        merger = self._module(hf.Qwen2_5_VLPatchMerger(out_dim, D, merge_size), params)
        merger.ln_q.variance_epsilon = eps
        return _np(merger(self._in(x)))

    @_numeric
    def vision_tower(self, pixel_values, grid_thw, weights, config):
        model = hf.Qwen2_5_VisionTransformerPretrainedModel._from_config(hf_config(**config))
        model = self._module(model, weights)
        return _np(model(self._in(pixel_values), _t(grid_thw, torch.int64).reshape(-1, 3)).pooler_output)


TARGET = HFTarget  # a class: load_target instantiates it
