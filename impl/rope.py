"""2-D rotary position embedding (SPEC-NOTES §3, "2D RoPE"), computed in float32 or wider.

Inside the tower the q and k weight rows of each head are reordered so that every rotation pair
(i, i + head_dim/2) sits in adjacent columns (2j, 2j+1); q·k is unchanged by a permutation applied to
both, and the rotation becomes one complex multiplication by cos + i·sin.
"""

from __future__ import annotations

import numpy as np
import torch

from vitspec.impl.weights import host_array, rope_dtype, to_tensor
from vitspec.spec.validate import grid_rows, require_ndim, rotary_head_dim, rotary_input


def position_ids(rows, merge_size: int) -> np.ndarray:
    """(row, col) of every patch in merge-block order, tiled over frames (vectorized, host)."""
    m = merge_size
    out = []
    for t, h, w in rows:
        r = np.arange(h * w)
        cell, inner = np.divmod(r, m * m)
        bh, bw = np.divmod(cell, w // m)
        mh, mw = np.divmod(inner, m)
        one_frame = np.stack([bh * m + mh, bw * m + mw], axis=1)
        out.append(np.tile(one_frame, (t, 1)))
    return np.concatenate(out).astype(np.int64)


def rotary_position_ids(grid_thw, merge_size: int = 2, *, device="cpu") -> torch.Tensor:
    """Patch coordinates in merge-block order, tiled (not repeated) over frames."""
    rows = grid_rows(grid_thw, merge_size)
    return torch.from_numpy(position_ids(rows, merge_size)).to(device)


def inv_freq(head_dim: int, theta: float = 10000.0) -> np.ndarray:
    """The head_dim/4 inverse frequencies of one axis, theta^(-j / (head_dim/4)) for j < head_dim/4, float64."""
    head_dim, theta = rotary_head_dim(head_dim, theta)
    half = head_dim // 2
    exponents = 2.0 * np.arange(half // 2, dtype=np.float64) / half
    return np.power(theta, -exponents)


def half_angles(pos: np.ndarray, head_dim: int, theta: float = 10000.0) -> np.ndarray:
    """The head_dim/2 angles [row*inv_freq, col*inv_freq] of each token, float64."""
    freqs = inv_freq(head_dim, theta)
    return np.concatenate([pos[:, :1] * freqs, pos[:, 1:] * freqs], axis=1)


def rotary_angles(position_ids, head_dim: int, theta: float = 10000.0, *, dtype=torch.float32, device="cpu"):
    """The head_dim/2 angles [row*inv_freq, col*inv_freq] per token (float32, or float64 for a float64 target)."""
    require_ndim("position_ids", position_ids, 2, "(num_tokens, 2)")
    pos = np.asarray(host_array(position_ids))
    if pos.shape[1] != 2:
        raise ValueError(f"position_ids must have shape (num_tokens, 2) of (row, col), got {pos.shape}")
    return to_tensor(half_angles(pos.astype(np.float64), head_dim, theta), rope_dtype(dtype), device)


def rotary_cos_sin(position_ids, head_dim: int, theta: float = 10000.0, *, dtype=torch.float32, device="cpu"):
    """cos and sin of the angles duplicated to head_dim (float32, or float64 for a float64 target)."""
    require_ndim("position_ids", position_ids, 2, "(num_tokens, 2)")
    pos = np.asarray(host_array(position_ids))
    if pos.shape[1] != 2:
        raise ValueError(f"position_ids must have shape (num_tokens, 2) of (row, col), got {pos.shape}")
    angles = np.tile(half_angles(pos.astype(np.float64), head_dim, theta), 2)
    out = rope_dtype(dtype)
    return to_tensor(np.cos(angles), out, device), to_tensor(np.sin(angles), out, device)


def full_cos_sin(rotary, form: str, wide, device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (N, head_dim) in the wide dtype from rotary in its form: angles (N, head_dim/2), or (cos, sin)."""
    if form == "angles":  # cos and sin of the angles as given (float64), then the wide dtype
        angles = to_tensor(rotary, torch.float64, device)
        return torch.cos(angles).repeat(1, 2).to(wide), torch.sin(angles).repeat(1, 2).to(wide)
    return to_tensor(rotary[0], wide, device), to_tensor(rotary[1], wide, device)


def rope_table(rotary, form: str, wide, device) -> torch.Tensor:
    """rotary as the block's paired table: angles -> (N, head_dim/2, 2) [cos, sin] per rotation pair;
    (cos, sin) -> (N, head_dim/2, 2, 2) [cos, sin] per pair member (arbitrary per-dimension values)."""
    if form == "angles":  # cos and sin of the angles as given (float64), then the wide dtype
        angles = to_tensor(rotary, torch.float64, device)
        return torch.stack((torch.cos(angles), torch.sin(angles)), dim=-1).to(wide)
    return paired_cos_sin(to_tensor(rotary[0], wide, device), to_tensor(rotary[1], wide, device))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, dtype) -> torch.Tensor:
    """x (N, heads, head_dim) * cos + rotate_half(x) * sin in cos's (wide) dtype, result in dtype."""
    hd = x.shape[-1]
    x = x.to(cos.dtype)
    cos, sin = cos[:, None, :], sin[:, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return (x * cos + torch.cat((-x2, x1), dim=-1) * sin).to(dtype)


def apply_rotary(x, rotary, *, form="angles", dtype=torch.float32, device="cpu") -> torch.Tensor:
    """x*cos + rotate_half(x)*sin in float32 or wider, result in the model dtype; rotary in the target's form."""
    require_ndim("x", x, 3, "(num_tokens, heads, head_dim)")
    N, _, hd = (int(s) for s in x.shape)
    rotary_input(rotary, N, hd, form)
    wide = rope_dtype(dtype)
    cos, sin = full_cos_sin(rotary, form, wide, device)
    return rotate(to_tensor(x, dtype, device), cos, sin, dtype)


def pair_order(head_dim: int) -> np.ndarray:
    """Head dims reordered [0, h, 1, h+1, ...] (h = head_dim/2): each rotation pair becomes adjacent."""
    half = head_dim // 2
    return np.stack([np.arange(half), np.arange(half) + half], axis=1).reshape(-1)


def paired_cos_sin(cos, sin) -> torch.Tensor:
    """Full cos/sin (N, head_dim) reordered to the paired layout: (N, head_dim/2, 2, 2) of [[cos_a, sin_a], [cos_b, sin_b]]."""
    N, hd = cos.shape
    order = torch.as_tensor(pair_order(hd), device=cos.device)
    c, s = cos[:, order].view(N, hd // 2, 2), sin[:, order].view(N, hd // 2, 2)
    return torch.stack((c, s), dim=-1)


def rotate_pairs(qk: torch.Tensor, rope: torch.Tensor, fused_complex: bool = True) -> torch.Tensor:
    """RoPE on q, k (N, 2, heads, head_dim) in the paired layout, computed in rope's dtype, result in qk's dtype."""
    # rope: (N, hd/2, 2) [cos, sin] per pair (one complex multiply; real arithmetic for torch.compile),
    # or (N, hd/2, 2, 2) [cos, sin] per pair member for arbitrary per-dimension cos/sin.
    N, _, H, hd = qk.shape
    x = qk.to(rope.dtype).view(N, 2, H, hd // 2, 2)
    if rope.dim() == 3 and fused_complex:
        z = torch.view_as_complex(x) * torch.view_as_complex(rope)[:, None, None, :]
        return torch.view_as_real(z).view(N, 2, H, hd).to(qk.dtype)
    cs = (rope if rope.dim() == 4 else rope.unsqueeze(-2))[:, None, None]  # (N, 1, 1, hd/2, 2 or 1, 2)
    rotated = torch.stack((-x[..., 1], x[..., 0]), dim=-1)
    return (x * cs[..., 0] + rotated * cs[..., 1]).view(N, 2, H, hd).to(qk.dtype)
