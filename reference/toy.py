"""The document's toy operations (seed §1): patches vs convolution on a small matrix."""

from __future__ import annotations

import numpy as np

from vitspec.spec.validate import positive_int, require_ndim


def patchify2d(x, patch_size: int):
    """Non-overlapping p×p patches in raster order, each flattened row-major (channels innermost).

    An (H, W) or (H, W, C) array -> (H/p * W/p, p*p*C); the 8×8 example's first 2×2 patch is [1, 2, 9, 10].
    """
    p = positive_int("patch_size", patch_size)
    require_ndim("x", x, (2, 3), "(height, width) or (height, width, channels)")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    H, W, C = x.shape
    if H == 0 or W == 0 or H % p or W % p:
        raise ValueError(f"x height and width must be positive multiples of patch_size={p}, got {H}x{W}")
    patches = []
    for top in range(0, H, p):
        for left in range(0, W, p):
            patches.append(x[top : top + p, left : left + p, :].reshape(-1))
    return np.stack(patches)


def linear(x, weight, bias=None):
    """Linear projection x @ W (+ b), W of shape (in, out) as the document writes it."""
    require_ndim("x", x, (1, 2), "(in,) or (n, in)")
    require_ndim("weight", weight, 2, "(in, out)")
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if x.shape[-1] != weight.shape[0]:
        raise ValueError(f"weight must have {x.shape[-1]} rows to match x's last axis, got shape {weight.shape}")
    out = x @ weight
    if bias is not None:
        out = out + np.asarray(bias, dtype=np.float64)
    return out


def conv_output_size(size: int, kernel: int, stride: int = 1) -> int:
    """Valid (no padding) output length: floor((size - kernel) / stride) + 1."""
    size, kernel, stride = positive_int("size", size), positive_int("kernel", kernel), positive_int("stride", stride)
    if kernel > size:
        raise ValueError(f"kernel must not exceed size for a valid convolution, got kernel={kernel} > size={size}")
    return (size - kernel) // stride + 1


def conv2d(x, kernel, stride: int = 1, bias: float = 0.0):
    """2-D cross-correlation with valid padding: out[i, j] = sum(x[i*s:i*s+k, j*s:j*s+k] * K) + b."""
    require_ndim("x", x, 2, "(height, width)")
    require_ndim("kernel", kernel, 2, "(kh, kw)")
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    s = positive_int("stride", stride)
    (H, W), (kh, kw) = x.shape, kernel.shape
    oh, ow = conv_output_size(H, kh, s), conv_output_size(W, kw, s)
    out = np.empty((oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = np.sum(x[i * s : i * s + kh, j * s : j * s + kw] * kernel) + bias
    return out


def patch_projection_cost(height: int, width: int, patch_size: int, channels: int = 1, out_dim: int = 1) -> dict:
    """The document's cost of the patch path: one projection of a p*p*C vector by a (p*p*C, out) matrix per patch."""
    p = positive_int("patch_size", patch_size)
    n = (positive_int("height", height) // p) * (positive_int("width", width) // p)
    vec = p * p * positive_int("channels", channels)
    out_dim = positive_int("out_dim", out_dim)
    return {"projections": n, "vector_length": vec, "matrix_shape": (vec, out_dim), "multiply_adds": n * vec * out_dim}


def conv_cost(height: int, width: int, kernel: int, stride: int = 1) -> dict:
    """The document's cost of the convolution path: one k×k inner product per output position."""
    oh, ow = conv_output_size(height, kernel, stride), conv_output_size(width, kernel, stride)
    return {"inner_products": oh * ow, "window_shape": (kernel, kernel), "multiply_adds": oh * ow * kernel * kernel}
