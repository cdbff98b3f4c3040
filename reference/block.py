"""The vision block (SPEC-NOTES §3, "Block"): pre-norm residual attention and SwiGLU MLP."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from vitspec.reference.attention import attention_module
from vitspec.spec.validate import BLOCK_KEYS, MLP_KEYS  # noqa: F401  (the parameter names, for readers)


def rms_norm(x, weight, eps: float = 1e-6):
    """RMSNorm: x / sqrt(mean(x^2) + eps) * weight over the last axis."""
    x, weight, eps = np.asarray(x, dtype=np.float64), np.asarray(weight, dtype=np.float64), float(eps)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def linear(x, weight, bias):
    """nn.Linear: x @ W.T + b with W of shape (out, in)."""
    return x @ np.asarray(weight, dtype=np.float64).T + np.asarray(bias, dtype=np.float64)


def silu(x):
    """SiLU(x) = x * sigmoid(x)."""
    return x * expit(x)


def mlp(x, params):
    """SwiGLU MLP with biases: down(silu(gate(x)) * up(x))."""
    x = np.asarray(x, dtype=np.float64)
    gate = linear(x, params["gate_proj.weight"], params["gate_proj.bias"])
    up = linear(x, params["up_proj.weight"], params["up_proj.bias"])
    return linear(silu(gate) * up, params["down_proj.weight"], params["down_proj.bias"])


def vision_block(x, params, cu_seqlens, rotary, num_heads: int, eps: float = 1e-6):
    """x = x + attention_module(norm1(x)); then x = x + mlp(norm2(x)).

    The attention module (reference/attention.py) is one Linear(D, 3D) laid out [q of all heads | k | v], RoPE on q
    and k (rotary: angles (N, head_dim/2) or (cos, sin) each (N, head_dim)), segment attention, and proj.
    """
    x, H, eps = np.asarray(x, dtype=np.float64), int(num_heads), float(eps)
    attn_params = {k[len("attn.") :]: val for k, val in params.items() if k.startswith("attn.")}
    x = x + attention_module(rms_norm(x, params["norm1.weight"], eps), attn_params, cu_seqlens, rotary, H)
    mlp_params = {k[len("mlp.") :]: val for k, val in params.items() if k.startswith("mlp.")}
    return x + mlp(rms_norm(x, params["norm2.weight"], eps), mlp_params)
