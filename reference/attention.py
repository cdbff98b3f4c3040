"""Segment attention (SPEC-NOTES §3, "Attention"): non-causal, scale 1/sqrt(head_dim), never across segments."""
from __future__ import annotations

import numpy as np

from vitspec.spec.validate import require_ndim


def check_cu_seqlens(cu_seqlens, total: int):
    """cu_seqlens starts at 0, never decreases, and ends at the number of tokens."""
    require_ndim("cu_seqlens", cu_seqlens, 1, "(num_segments + 1,)")
    cu = np.asarray(cu_seqlens)
    if not np.issubdtype(cu.dtype, np.integer):
        raise TypeError(f"cu_seqlens must hold integers, got dtype {cu.dtype}")
    if cu.size < 2 or cu[0] != 0 or cu[-1] != total or np.any(np.diff(cu) < 0):
        raise ValueError(f"cu_seqlens must rise from 0 to the number of tokens {total}, got {cu.tolist()[:8]}"
                         f"{'...' if cu.size > 8 else ''} ending at {int(cu[-1]) if cu.size else None}")
    return cu.astype(np.int64)


def softmax(scores):
    """Row softmax, shifted by the row maximum."""
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(q, k, v, cu_seqlens):
    """Per segment [a, b) and head: softmax(q k^T / sqrt(head_dim)) v; tokens see only their own segment."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        require_ndim(name, x, 3, "(num_tokens, heads, head_dim)")
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k and v must have the same shape, got {q.shape}, {k.shape}, {v.shape}")
    cu = check_cu_seqlens(cu_seqlens, q.shape[0])
    scale = 1.0 / np.sqrt(q.shape[2])
    out = np.zeros_like(q)
    for a, b in zip(cu[:-1], cu[1:]):
        if a == b:  # a zero-length segment holds no token: nothing to attend
            continue
        for h in range(q.shape[1]):
            weights = softmax(q[a:b, h] @ k[a:b, h].T * scale)
            out[a:b, h] = weights @ v[a:b, h]
    return out
