"""The patch merger (SPEC-NOTES §3, "Merger"): RMSNorm, 2×2 rows concatenated, Linear, erf GELU, Linear."""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from vitspec.reference.block import linear, rms_norm
from vitspec.spec.validate import MERGER_KEYS  # noqa: F401  (the parameter names, for readers)


def gelu(x):
    """Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (not the tanh approximation)."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def merger(x, params, merge_size: int = 2, eps: float = 1e-6):
    """Each run of merge_size**2 consecutive rows (one 2×2 block: TL, TR, BL, BR) becomes one output token."""
    x, unit, eps = np.asarray(x, dtype=np.float64), int(merge_size) ** 2, float(eps)
    N, D = x.shape
    grouped = rms_norm(x, params["ln_q.weight"], eps).reshape(N // unit, unit * D)
    hidden = gelu(linear(grouped, params["mlp.0.weight"], params["mlp.0.bias"]))
    return linear(hidden, params["mlp.2.weight"], params["mlp.2.bias"])
