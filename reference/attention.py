"""Segment attention (SPEC-NOTES §3, "Attention"): non-causal, scale 1/sqrt(head_dim), never across segments.

The math only: the input rules (spec/validate.py attention_inputs, attention_module_inputs) are applied by
reference.TARGET."""

from __future__ import annotations

import numpy as np

from vitspec.reference.rope import apply_rotary


def softmax(scores):
    """Row softmax, shifted by the row maximum."""
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(q, k, v, cu_seqlens):
    """Per segment [a, b) and head: softmax(q k^T / sqrt(head_dim)) v; tokens see only their own segment."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    cu = np.asarray(cu_seqlens, dtype=np.int64)
    scale = 1.0 / np.sqrt(q.shape[2])
    out = np.zeros_like(q)
    for a, b in zip(cu[:-1], cu[1:]):
        if a == b:  # a zero-length segment holds no token: nothing to attend
            continue
        for h in range(q.shape[1]):
            weights = softmax(q[a:b, h] @ k[a:b, h].T * scale)
            out[a:b, h] = weights @ v[a:b, h]
    return out


ATTENTION_KEYS = ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias")


def attention_module(x, params, cu_seqlens, rotary, num_heads: int):
    """HF's Qwen2_5_VLVisionAttention: qkv = Linear(D, 3D) laid out [q of all heads | k | v], RoPE on q and k,
    segment attention, proj = Linear(D, D). params: the blocks.i.attn sub-dict (qkv.weight, qkv.bias, proj.weight,
    proj.bias); rotary: angles (N, head_dim/2) or (cos, sin) each (N, head_dim)."""
    x = np.asarray(x, dtype=np.float64)
    N, D = x.shape
    H = int(num_heads)
    qkv = x @ np.asarray(params["qkv.weight"], dtype=np.float64).T + np.asarray(params["qkv.bias"], dtype=np.float64)
    q, k, v = qkv.reshape(N, 3, H, D // H).transpose(1, 0, 2, 3)
    q, k = apply_rotary(q, rotary), apply_rotary(k, rotary)
    out = attention(q, k, v, cu_seqlens).reshape(N, D)
    return out @ np.asarray(params["proj.weight"], dtype=np.float64).T + np.asarray(
        params["proj.bias"], dtype=np.float64
    )
