"""The vision block (SPEC-NOTES §3, "Block"): pre-norm residual attention and SwiGLU MLP, fused GEMMs.

Prepared block weights hold q/k rows in the paired RoPE layout (impl/rope.py) and gate/up stacked
into one (2I, D) matrix, so a block runs three GEMMs for qkv, gate+up and down plus the projection.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vitspec.impl import fused
from vitspec.impl.attention import SegmentPlan, segment_attention, segment_plan
from vitspec.impl.rope import pair_order, rope_table, rotate_pairs
from vitspec.impl.weights import host_array, rope_dtype, to_tensor
from vitspec.spec.validate import BLOCK_KEYS, MLP_KEYS, mlp_inputs, rms_norm_inputs

GEMM_MULTIPLE = 128  # MLP width padding on CUDA: 3420 -> 3456


def norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm with float32 statistics for half-precision x (F.rms_norm upcasts), result in x's dtype."""
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def add_norm(x, y, weight, eps):
    """The residual sum x + y and its RMSNorm."""
    s = x + y
    return s, norm(s, weight, eps)


@dataclass(frozen=True)
class Elementwise:
    """The element-wise pieces of a block: fused kernels on CUDA (eager torch elsewhere), or torch.compile'd."""

    norm: object = norm
    add_norm: object = add_norm
    rotate: object = fused.rotate
    swiglu: object = fused.swiglu


EAGER = Elementwise()


@functools.lru_cache(maxsize=1)
def compiled() -> Elementwise:
    """The element-wise pieces under torch.compile (dynamic shapes, so one compilation serves every grid)."""
    c = functools.partial(torch.compile, dynamic=True)
    rotate = functools.partial(rotate_pairs, fused_complex=False)  # inductor has no complex codegen
    return Elementwise(c(norm), c(add_norm), c(rotate), c(fused.eager_swiglu))


@dataclass(frozen=True)
class BlockWeights:
    """One prepared block: qkv rows in the paired RoPE layout, gate and up stacked."""

    norm1: torch.Tensor
    qkv_w: torch.Tensor
    qkv_b: torch.Tensor
    proj_w: torch.Tensor
    proj_b: torch.Tensor
    norm2: torch.Tensor
    gate_up_w: torch.Tensor
    gate_up_b: torch.Tensor
    down_w: torch.Tensor
    down_b: torch.Tensor
    num_heads: int


def qkv_row_order(hidden: int, num_heads: int) -> np.ndarray:
    """qkv weight rows with each head of q and k in the paired RoPE layout; v unchanged."""
    hd = hidden // num_heads
    heads = (np.arange(num_heads)[:, None] * hd + pair_order(hd)[None, :]).reshape(-1)
    return np.concatenate([heads, hidden + heads, 2 * hidden + np.arange(hidden)])


def padded_width(width: int, device) -> int:
    """The MLP width rounded up to a multiple of GEMM_MULTIPLE on CUDA (cuBLAS picks faster kernels), else as is."""
    m = GEMM_MULTIPLE if torch.device(device).type == "cuda" else 1
    return -(-width // m) * m


def prepare_block(params: dict, num_heads: int, dtype, device) -> BlockWeights:
    """One block's weights (HF names, prefix removed) cast to dtype on device, q/k rows paired, gate+up stacked."""
    # Zero rows appended to gate and up and zero columns to down leave the output exactly unchanged.
    t = {k: to_tensor(params[k], dtype, device) for k in BLOCK_KEYS}
    rows = torch.from_numpy(qkv_row_order(t["norm1.weight"].shape[0], num_heads)).to(device)
    inter = t["mlp.gate_proj.weight"].shape[0]
    pad = padded_width(inter, device) - inter
    gate_up_w = [F.pad(t[f"mlp.{n}.weight"], (0, 0, 0, pad)) for n in ("gate_proj", "up_proj")]
    gate_up_b = [F.pad(t[f"mlp.{n}.bias"], (0, pad)) for n in ("gate_proj", "up_proj")]
    return BlockWeights(
        t["norm1.weight"],
        t["attn.qkv.weight"][rows].contiguous(),
        t["attn.qkv.bias"][rows].contiguous(),
        t["attn.proj.weight"],
        t["attn.proj.bias"],
        t["norm2.weight"],
        torch.cat(gate_up_w),
        torch.cat(gate_up_b),
        F.pad(t["mlp.down_proj.weight"], (0, pad)).contiguous(),
        t["mlp.down_proj.bias"],
        num_heads,
    )


def block_forward(
    x: torch.Tensor, w: BlockWeights, rope: torch.Tensor, plan: SegmentPlan, eps: float, ops: Elementwise = EAGER
) -> torch.Tensor:
    """x + proj(attention(rope(q), rope(k), v)) on norm1(x), then + down(silu(gate) * up) on norm2."""
    N, D = x.shape
    H = w.num_heads
    qkv = F.linear(ops.norm(x, w.norm1, eps), w.qkv_w, w.qkv_b)
    qk = ops.rotate(qkv[:, : 2 * D].view(N, 2, H, D // H), rope)
    attn = segment_attention(qk[:, 0], qk[:, 1], qkv[:, 2 * D :].view(N, H, D // H), plan)
    x, h = ops.add_norm(x, F.linear(attn.reshape(N, D), w.proj_w, w.proj_b), w.norm2, eps)
    return x + F.linear(ops.swiglu(F.linear(h, w.gate_up_w, w.gate_up_b)), w.down_w, w.down_b)


def rms_norm(x, weight, eps: float = 1e-6, *, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) * weight, statistics in float32 or wider."""
    rms_norm_inputs(x, weight, eps)
    return norm(to_tensor(x, dtype, device), to_tensor(weight, dtype, device), float(eps))


def mlp(x, params, *, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """down(silu(gate(x)) * up(x)) with gate and up as one GEMM."""
    mlp_inputs(x, params)
    t = {k: to_tensor(params[k], dtype, device) for k in MLP_KEYS}
    gate_up = F.linear(
        to_tensor(x, dtype, device),
        torch.cat([t["gate_proj.weight"], t["up_proj.weight"]]),
        torch.cat([t["gate_proj.bias"], t["up_proj.bias"]]),
    )
    return F.linear(fused.swiglu(gate_up), t["down_proj.weight"], t["down_proj.bias"])


def vision_block(
    x,
    params,
    cu_seqlens,
    rotary,
    num_heads: int,
    eps: float = 1e-6,
    *,
    form="angles",
    dtype=torch.float32,
    device="cpu",
    ops: Elementwise = EAGER,
) -> torch.Tensor:
    """One pre-norm block over the segments of cu_seqlens; rotary in the target's form (angles (N, head_dim/2), or
    (cos, sin) each (N, head_dim): arbitrary per-dimension values run through the general paired table).
    Its input rules (spec/validate.py vision_block_inputs) are applied by impl.TARGET."""
    H, eps = int(num_heads), float(eps)
    cu = np.asarray(host_array(cu_seqlens), dtype=np.int64)
    x = to_tensor(x, dtype, device)
    rope = rope_table(rotary, form, rope_dtype(dtype), x.device)
    w = prepare_block(params, H, dtype, x.device)
    return block_forward(x, w, rope, segment_plan(np.diff(cu), x.device), eps, ops)
