"""The patch merger (SPEC-NOTES §3, "Merger"): RMSNorm, 2×2 rows concatenated, Linear, erf GELU, Linear."""
from __future__ import annotations

import numpy as np
from scipy.special import erf

from vitspec.reference.block import linear, rms_norm
from vitspec.spec.validate import positive_float, positive_int, require_keys, require_ndim, shape_of

MERGER_KEYS = ("ln_q.weight", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias")


def gelu(x):
    """Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (not the tanh approximation)."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def check_merger_params(params, D: int, unit: int) -> None:
    """The merger weights hold every key, float, shaped for hidden size D and unit = merge_size**2 rows per token."""
    out_dim = shape_of(params["mlp.2.weight"])[0] if isinstance(params, dict) and "mlp.2.weight" in params else 0
    require_keys("params", params, MERGER_KEYS, {
        "ln_q.weight": (D,), "mlp.0.weight": (unit * D, unit * D), "mlp.0.bias": (unit * D,),
        "mlp.2.weight": (out_dim, unit * D), "mlp.2.bias": (out_dim,)})


def merger(x, params, merge_size: int = 2, eps: float = 1e-6):
    """Each run of merge_size**2 consecutive rows (one 2×2 block: TL, TR, BL, BR) becomes one output token."""
    require_ndim("x", x, 2, "(num_patches, hidden)")
    x = np.asarray(x, dtype=np.float64)
    unit = positive_int("merge_size", merge_size) ** 2
    eps = positive_float("eps", eps)
    N, D = x.shape
    if N % unit:
        raise ValueError(f"x must have a multiple of merge_size**2 = {unit} rows, got {N}")
    check_merger_params(params, D, unit)
    grouped = rms_norm(x, params["ln_q.weight"], eps).reshape(N // unit, unit * D)
    hidden = gelu(linear(grouped, params["mlp.0.weight"], params["mlp.0.bias"]))
    return linear(hidden, params["mlp.2.weight"], params["mlp.2.bias"])
