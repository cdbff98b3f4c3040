"""Segment attention (SPEC-NOTES §3, "Attention"): softmax(q k^T / sqrt(head_dim)) v inside each segment.

Segments of equal length that lie next to each other form one run, computed as one batched
scaled_dot_product_attention call on a (count, heads, length, head_dim) view: no mask, no padding.
When equal lengths are not adjacent, one gather reorders the tokens so that they are (and one
scatter puts the result back).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vitspec.impl.weights import host_array, to_tensor
from vitspec.spec.validate import ATTENTION_KEYS, attention_module_inputs, require_cu_seqlens, require_ndim


@dataclass(frozen=True)
class SegmentPlan:
    """Attention segments as runs of equal length, with the token gather that makes them adjacent."""

    runs: tuple  # (first token, number of segments, segment length) in gathered order
    gather: torch.Tensor | None  # token order that makes equal-length segments adjacent, None = as given
    scatter: torch.Tensor | None  # its inverse


def token_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of arange(s, s + l) over (starts, lengths), vectorized."""
    ends = np.cumsum(lengths)
    return np.repeat(starts - (ends - lengths), lengths) + np.arange(int(ends[-1]) if ends.size else 0)


def segment_plan(lengths, device, token_order: np.ndarray | None = None) -> SegmentPlan:
    """Runs of equal-length segments, segments laid out in sequence in x[token_order] (None: x itself)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    lengths = lengths[lengths > 0]
    change = np.flatnonzero(np.diff(lengths)) + 1
    if len(change) + 1 > len(np.unique(lengths)):  # some equal lengths are not adjacent: sort by length
        by_length = np.argsort(-lengths, kind="stable")
        tokens = token_ranges((np.cumsum(lengths) - lengths)[by_length], lengths[by_length])
        token_order = tokens if token_order is None else token_order[tokens]
        lengths = lengths[by_length]
        change = np.flatnonzero(np.diff(lengths)) + 1
    starts = np.concatenate([[0], change]).astype(np.int64) if lengths.size else np.zeros(0, np.int64)
    counts = np.diff(np.concatenate([starts, [lengths.size]]))
    first_token = (np.cumsum(lengths) - lengths)[starts] if lengths.size else starts
    runs = tuple((int(a), int(n), int(lengths[s])) for a, n, s in zip(first_token, counts, starts))
    if token_order is None or np.array_equal(token_order, np.arange(token_order.size)):
        return SegmentPlan(runs, None, None)
    gather = torch.from_numpy(np.ascontiguousarray(token_order, dtype=np.int64)).to(device)
    scatter = torch.empty_like(gather)
    scatter[gather] = torch.arange(gather.numel(), device=gather.device)
    return SegmentPlan(runs, gather, scatter)


MATH_SCORES_LIMIT = 1 << 27  # score elements per call on the materializing (float64) path: 1 GiB


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Batched SDPA on (B, heads, L, head_dim); float64 (no fused kernel) is split over queries to bound memory."""
    B, H, L, _ = q.shape
    if q.dtype != torch.float64 or B * H * L * L <= MATH_SCORES_LIMIT:
        return F.scaled_dot_product_attention(q, k, v)
    step = max(1, MATH_SCORES_LIMIT // (B * H * L))
    return torch.cat([F.scaled_dot_product_attention(q[:, :, i : i + step], k, v) for i in range(0, L, step)], dim=2)


def segment_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: SegmentPlan) -> torch.Tensor:
    """q, k, v (N, heads, head_dim) -> (N, heads, head_dim); one SDPA call per run of equal-length segments."""
    N, H, hd = q.shape
    if plan.gather is not None:
        q, k, v = (t.index_select(0, plan.gather) for t in (q, k, v))
    outs = []
    for first, count, length in plan.runs:

        def batch(t):
            return t[first : first + count * length].unflatten(0, (count, length)).transpose(1, 2)

        out = sdpa(batch(q), batch(k), batch(v))
        outs.append(out.transpose(1, 2).reshape(count * length, H, hd))
    if not outs:
        return q.new_zeros((0, H, hd))
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    return out if plan.scatter is None else out.index_select(0, plan.scatter)


def attention(q, k, v, cu_seqlens, *, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Non-causal attention inside each segment of cu_seqlens, never across."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        require_ndim(name, x, 3, "(num_tokens, heads, head_dim)")
    if tuple(k.shape) != tuple(q.shape) or tuple(v.shape) != tuple(q.shape):
        raise ValueError(
            f"q, k and v must have the same shape, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    cu = require_cu_seqlens(host_array(cu_seqlens), int(q.shape[0]))
    q, k, v = (to_tensor(x, dtype, device) for x in (q, k, v))
    return segment_attention(q, k, v, segment_plan(np.diff(cu), q.device))


def attention_module(
    x, params, cu_seqlens, rotary, num_heads: int, *, form="angles", dtype=torch.float32, device="cpu"
) -> torch.Tensor:
    """HF's Qwen2_5_VLVisionAttention: one qkv GEMM ([q | k | v] rows), RoPE on q and k in float32 or wider, one
    SDPA call per run of equal-length segments, the output projection. rotary in the target's form."""
    N, D, H, cu = attention_module_inputs(x, params, cu_seqlens, rotary, num_heads, form)
    from vitspec.impl.rope import full_cos_sin, rotate
    from vitspec.impl.weights import rope_dtype

    w = {k: to_tensor(params[k], dtype, device) for k in ATTENTION_KEYS}
    x = to_tensor(x, dtype, device)
    qkv = F.linear(x, w["qkv.weight"], w["qkv.bias"]).view(N, 3, H, D // H)
    cos, sin = full_cos_sin(rotary, form, rope_dtype(dtype), x.device)
    q, k = rotate(qkv[:, 0], cos, sin, dtype), rotate(qkv[:, 1], cos, sin, dtype)
    out = segment_attention(q, k, qkv[:, 2], segment_plan(np.diff(cu), x.device))
    return F.linear(out.reshape(N, D), w["proj.weight"], w["proj.bias"])
