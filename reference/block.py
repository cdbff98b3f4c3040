"""The vision block (SPEC-NOTES §3, "Block"): pre-norm residual attention and SwiGLU MLP."""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from vitspec.reference.attention import attention_module
from vitspec.spec.validate import positive_float, positive_int, require_float, require_keys, require_ndim, shape_of

MLP_KEYS = ("gate_proj.weight", "gate_proj.bias", "up_proj.weight", "up_proj.bias", "down_proj.weight", "down_proj.bias")
BLOCK_KEYS = ("norm1.weight", "norm2.weight", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
              "attn.proj.bias") + tuple("mlp." + k for k in MLP_KEYS)


def rms_norm(x, weight, eps: float = 1e-6):
    """RMSNorm: x / sqrt(mean(x^2) + eps) * weight over the last axis."""
    require_ndim("x", x, 2, "(num_tokens, hidden)")
    require_ndim("weight", weight, 1, "(hidden,)")
    require_float("weight", weight)
    eps = positive_float("eps", eps)
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if weight.shape[0] != x.shape[1]:
        raise ValueError(f"weight must have shape ({x.shape[1]},) to match x, got {weight.shape}")
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def linear(x, weight, bias):
    """nn.Linear: x @ W.T + b with W of shape (out, in)."""
    return x @ np.asarray(weight, dtype=np.float64).T + np.asarray(bias, dtype=np.float64)


def silu(x):
    """SiLU(x) = x * sigmoid(x)."""
    return x * expit(x)


def check_mlp_params(params, D: int) -> None:
    """The MLP weights hold every key, float, with shapes matching the hidden size D (any intermediate size)."""
    inter = shape_of(params["gate_proj.weight"])[0] if isinstance(params, dict) and "gate_proj.weight" in params else 0
    require_keys("params", params, MLP_KEYS, {
        "gate_proj.weight": (inter, D), "gate_proj.bias": (inter,), "up_proj.weight": (inter, D),
        "up_proj.bias": (inter,), "down_proj.weight": (D, inter), "down_proj.bias": (D,)})


def check_block_params(params, D: int) -> None:
    """The block weights (blocks.i sub-dict) hold every key, float, with shapes matching the hidden size D."""
    require_keys("params", params, BLOCK_KEYS, {
        "norm1.weight": (D,), "norm2.weight": (D,), "attn.qkv.weight": (3 * D, D), "attn.qkv.bias": (3 * D,),
        "attn.proj.weight": (D, D), "attn.proj.bias": (D,)})
    check_mlp_params({k[len("mlp."):]: v for k, v in params.items() if k.startswith("mlp.")}, D)


def mlp(x, params):
    """SwiGLU MLP with biases: down(silu(gate(x)) * up(x))."""
    require_ndim("x", x, 2, "(num_tokens, hidden)")
    x = np.asarray(x, dtype=np.float64)
    check_mlp_params(params, x.shape[1])
    gate = linear(x, params["gate_proj.weight"], params["gate_proj.bias"])
    up = linear(x, params["up_proj.weight"], params["up_proj.bias"])
    return linear(silu(gate) * up, params["down_proj.weight"], params["down_proj.bias"])


def vision_block(x, params, cu_seqlens, rotary, num_heads: int, eps: float = 1e-6):
    """x = x + attention_module(norm1(x)); then x = x + mlp(norm2(x)).

    The attention module (reference/attention.py) is one Linear(D, 3D) laid out [q of all heads | k | v], RoPE on q
    and k (rotary: angles (N, head_dim/2) or (cos, sin) each (N, head_dim)), segment attention, and proj.
    """
    require_ndim("x", x, 2, "(num_tokens, hidden)")
    x = np.asarray(x, dtype=np.float64)
    N, D = x.shape
    H = positive_int("num_heads", num_heads)
    eps = positive_float("eps", eps)
    if D % H:
        raise ValueError(f"num_heads must divide the hidden size {D}, got {H}")
    check_block_params(params, D)
    attn_params = {k[len("attn."):]: val for k, val in params.items() if k.startswith("attn.")}
    x = x + attention_module(rms_norm(x, params["norm1.weight"], eps), attn_params, cu_seqlens, rotary, H)
    mlp_params = {k[len("mlp."):]: val for k, val in params.items() if k.startswith("mlp.")}
    return x + mlp(rms_norm(x, params["norm2.weight"], eps), mlp_params)
