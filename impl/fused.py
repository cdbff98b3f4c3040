"""Fused element-wise kernels for CUDA (Triton): RoPE on q and k in one pass, silu(gate) * up in one pass.

Both compute in float32 and write the model dtype. Where Triton is missing, the tensors are not on a
CUDA device, or the dtype is float64, the eager torch versions (impl/rope.py, impl/block.py) run instead.
TRITON_INTERPRET=1 runs the kernels on CPU tensors through Triton's interpreter (for testing).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from vitspec.impl.rope import rotate_pairs

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs
    triton = None

ENABLED = triton is not None
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
HALF_OR_SINGLE = (torch.float32, torch.bfloat16, torch.float16)

if triton is not None:

    @triton.jit
    def _rope_kernel(x_ptr, rope_ptr, out_ptr, x_stride, PAIRS: tl.constexpr, HALF: tl.constexpr, BLOCK: tl.constexpr):
        # One token per program row: rotate each (2p, 2p+1) column pair of q and k.
        token = tl.program_id(0).to(tl.int64)
        p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)  # pair index over q and k heads: columns 2p, 2p+1
        mask = p < PAIRS
        j = p % HALF  # pair within its head
        c = tl.load(rope_ptr + token * 2 * HALF + 2 * j, mask=mask)
        s = tl.load(rope_ptr + token * 2 * HALF + 2 * j + 1, mask=mask)
        a = tl.load(x_ptr + token * x_stride + 2 * p, mask=mask).to(tl.float32)
        b = tl.load(x_ptr + token * x_stride + 2 * p + 1, mask=mask).to(tl.float32)
        dst = out_ptr + token * 2 * PAIRS + 2 * p
        tl.store(dst, (a * c - b * s).to(out_ptr.dtype.element_ty), mask=mask)
        tl.store(dst + 1, (b * c + a * s).to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _swiglu_kernel(x_ptr, out_ptr, x_stride, INTER: tl.constexpr, BLOCK: tl.constexpr):
        # silu(gate) * up for one row block: gate in columns [0, INTER), up in [INTER, 2 INTER).
        row = tl.program_id(0).to(tl.int64)
        col = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = col < INTER
        g = tl.load(x_ptr + row * x_stride + col, mask=mask).to(tl.float32)
        u = tl.load(x_ptr + row * x_stride + INTER + col, mask=mask).to(tl.float32)
        tl.store(out_ptr + row * INTER + col, (g / (1.0 + tl.exp(-g)) * u).to(out_ptr.dtype.element_ty), mask=mask)


def usable(*tensors: torch.Tensor) -> bool:
    """Triton present and every tensor on a CUDA device (or interpreted) in float32, bfloat16 or float16."""
    return ENABLED and all((t.is_cuda or INTERPRET) and t.dtype in HALF_OR_SINGLE for t in tensors)


def rotate(qk: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
    """rotate_pairs in one kernel for the tower's (N, head_dim/2, 2) float32 angles; eager otherwise."""
    N, two, H, hd = qk.shape
    if not (
        usable(qk, rope)
        and rope.dim() == 3
        and rope.dtype == torch.float32
        and rope.is_contiguous()
        and qk.stride()[1:] == (H * hd, hd, 1)
    ):
        return rotate_pairs(qk, rope)
    out = torch.empty((N, two, H, hd), dtype=qk.dtype, device=qk.device)
    pairs = two * H * hd // 2
    if N:
        _rope_kernel[(N, triton.cdiv(pairs, 256))](qk, rope, out, qk.stride(0), PAIRS=pairs, HALF=hd // 2, BLOCK=256)
    return out


def eager_swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up with gate and up the two halves of one (N, 2I) GEMM output."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up over the two halves of a (N, 2I) tensor in one kernel; eager otherwise."""
    N, two_inter = gate_up.shape
    if not (usable(gate_up) and gate_up.stride(1) == 1):
        return eager_swiglu(gate_up)
    inter = two_inter // 2
    out = torch.empty((N, inter), dtype=gate_up.dtype, device=gate_up.device)
    if N:
        _swiglu_kernel[(N, triton.cdiv(inter, 1024))](gate_up, out, gate_up.stride(0), INTER=inter, BLOCK=1024)
    return out
