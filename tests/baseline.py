"""The same-dtype baseline: each float stage written plainly in torch at one dtype (CPU).

It is the yardstick of the low-precision rule in tests/tolerance.py: a bfloat16 target may be a small factor
less accurate than this. Inputs are rounded to the dtype first; the spec's float32 islands are kept (RMSNorm
statistics, RoPE angles and rotation, softmax), everything else runs in the dtype.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vitspec.spec.protocol import subdict

TORCH = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cast(x, dtype: str) -> torch.Tensor:
    """A float64 array rounded to dtype."""
    return torch.as_tensor(np.asarray(x, dtype=np.float64)).to(TORCH[dtype])


def out(x: torch.Tensor) -> np.ndarray:
    return x.double().numpy()


def _linear(x, params, name, dtype):
    return F.linear(x, cast(params[name + ".weight"], dtype), cast(params[name + ".bias"], dtype))


def patch_embed(pixel_values, weight, dtype):
    w = cast(weight, dtype)
    return out(cast(pixel_values, dtype) @ w.reshape(w.shape[0], -1).T)


def rotary_angles(position_ids, head_dim, dtype, theta=10000.0):
    """The half angles in float32 (the spec's float32 island), returned in float32 whatever the dtype."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim // 2, 2, dtype=torch.float32) / (head_dim // 2))
    pos = torch.as_tensor(np.asarray(position_ids)).float()
    return out(torch.cat([pos[:, :1] * inv, pos[:, 1:] * inv], dim=1))


def rotary_cos_sin(position_ids, head_dim, dtype, theta=10000.0):
    inv = 1.0 / theta ** (torch.arange(0, head_dim // 2, 2, dtype=torch.float32) / (head_dim // 2))
    pos = torch.as_tensor(np.asarray(position_ids)).float()
    half = torch.cat([pos[:, :1] * inv, pos[:, 1:] * inv], dim=1)
    angles = torch.cat([half, half], dim=1)
    return out(angles.cos().to(TORCH[dtype])), out(angles.sin().to(TORCH[dtype]))


def _rope(x: torch.Tensor, cos, sin) -> torch.Tensor:
    half = x.shape[-1] // 2
    x32 = x.float()
    c, s = (cast(a, "float32")[:, None, :] for a in (cos, sin))
    return (x32 * c + torch.cat([-x32[..., half:], x32[..., :half]], dim=-1) * s).to(x.dtype)


def apply_rotary(x, cos, sin, dtype):
    return out(_rope(cast(x, dtype), cos, sin))


def _attention(q, k, v, cu_seqlens):
    result = torch.zeros_like(q)
    scale = 1.0 / math.sqrt(q.shape[-1])
    cu = [int(c) for c in np.asarray(cu_seqlens)]
    for a, b in zip(cu[:-1], cu[1:]):
        qs, ks, vs = (t[a:b].transpose(0, 1) for t in (q, k, v))  # (heads, L, d)
        p = torch.softmax((qs @ ks.transpose(1, 2) * scale).float(), dim=-1).to(q.dtype)
        result[a:b] = (p @ vs).transpose(0, 1)
    return result


def attention(q, k, v, cu_seqlens, dtype):
    return out(_attention(cast(q, dtype), cast(k, dtype), cast(v, dtype), cu_seqlens))


def _rms_norm(x: torch.Tensor, weight, eps, dtype):
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return normed.to(x.dtype) * cast(weight, dtype)


def rms_norm(x, weight, eps, dtype):
    return out(_rms_norm(cast(x, dtype), weight, eps, dtype))


def _mlp(x, params, dtype):
    return _linear(
        F.silu(_linear(x, params, "gate_proj", dtype)) * _linear(x, params, "up_proj", dtype),
        params,
        "down_proj",
        dtype,
    )


def mlp(x, params, dtype):
    return out(_mlp(cast(x, dtype), params, dtype))


def _block(x, params, cu_seqlens, cos, sin, num_heads, eps, dtype):
    N, D = x.shape
    qkv = _linear(_rms_norm(x, params["norm1.weight"], eps, dtype), params, "attn.qkv", dtype)
    q, k, v = qkv.reshape(N, 3, num_heads, D // num_heads).unbind(1)
    attn = _attention(_rope(q, cos, sin), _rope(k, cos, sin), v, cu_seqlens).reshape(N, D)
    x = x + _linear(attn, params, "attn.proj", dtype)
    return x + _mlp(_rms_norm(x, params["norm2.weight"], eps, dtype), subdict(params, "mlp"), dtype)


def attention_module(x, params, cu_seqlens, cos, sin, num_heads, dtype):
    """qkv, RoPE (float32), attention, proj at dtype; params the blocks.i.attn sub-dict."""
    x = cast(x, dtype)
    N, D = x.shape
    q, k, v = _linear(x, params, "qkv", dtype).reshape(N, 3, num_heads, D // num_heads).unbind(1)
    attn = _attention(_rope(q, cos, sin), _rope(k, cos, sin), v, cu_seqlens).reshape(N, D)
    return out(_linear(attn, params, "proj", dtype))


def vision_block(x, params, cu_seqlens, cos, sin, num_heads, eps, dtype):
    return out(_block(cast(x, dtype), params, cu_seqlens, cos, sin, num_heads, eps, dtype))


def _merger(x, params, merge_size, eps, dtype):
    h = _rms_norm(x, params["ln_q.weight"], eps, dtype).reshape(-1, merge_size * merge_size * x.shape[1])
    return _linear(F.gelu(_linear(h, params, "mlp.0", dtype)), params, "mlp.2", dtype)


def merger(x, params, merge_size, eps, dtype):
    return out(_merger(cast(x, dtype), params, merge_size, eps, dtype))


def vision_tower(pixel_values, grid_thw, weights, config, dtype):
    """The tower composed of the stages above; index stages come from the reference (they are exact)."""
    from vitspec.reference import rope, windows

    m, eps = config["spatial_merge_size"], 1e-6
    head_dim = config["hidden_size"] // config["num_heads"]
    index, cu_window = windows.window_index(grid_thw, config["window_size"], config["patch_size"], m)
    cu_full = windows.cu_seqlens(grid_thw, m)
    cos, sin = rope.rotary_cos_sin(rope.rotary_position_ids(grid_thw, m), head_dim)
    cos, sin = (windows.permute_groups(a, index, m * m) for a in (cos, sin))
    w = cast(weights["patch_embed.proj.weight"], dtype)
    x = cast(pixel_values, dtype) @ w.reshape(w.shape[0], -1).T
    x = x.reshape(len(index), m * m, -1)[torch.as_tensor(index)].reshape(x.shape)
    for layer in range(config["depth"]):
        cu = cu_full if layer in config["fullatt_block_indexes"] else cu_window
        x = _block(x, subdict(weights, f"blocks.{layer}"), cu, cos, sin, config["num_heads"], eps, dtype)
    merged = _merger(x, subdict(weights, "merger"), m, eps, dtype)
    return out(merged[torch.as_tensor(np.argsort(index))])
