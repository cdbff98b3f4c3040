"""The tolerance model: one table, one rule per precision.

A float output is compared with the float64 reference on the same inputs. The error of each element is
divided by eps(dtype) * sqrt(K) * magnitude, where K is the length of the stage's longest reduction and
magnitude is the size of the reduction's inputs at that element (never the size of the tensor):

  float64, float32:   max normalized error <= c
  bfloat16, float16:  max normalized error <= factor * max(normalized error of the same-dtype baseline, floor)

with floor = 1 / sqrt(K): one rounding of the output (eps * magnitude), which no dtype can avoid.
The same-dtype baseline (tests/baseline.py) is the reference formula evaluated plainly in torch at that dtype,
with the float32 islands the spec prescribes (RMSNorm statistics, RoPE angles and rotation, softmax).

Measured with tests/measure_tolerance.py (impl:TARGET, CPU, 200 draws per stage, the suite's strategies).
"noise" is the largest normalized error seen from a correct target, "catches" the smallest planted bug each
entry must still reject, with its normalized error.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = {"float64": 2.0 ** -52, "float32": 2.0 ** -23, "bfloat16": 2.0 ** -7, "float16": 2.0 ** -10}
LOW_PRECISION = frozenset({"bfloat16", "float16"})


@dataclass(frozen=True)
class Tolerance:
    stage: str
    reduction: str  # what K is
    magnitude: str  # what each element's error is measured against
    c: float  # allowed normalized error (float64, float32)
    factor: float  # bfloat16, float16: allowed multiple of the same-dtype baseline's normalized error
    noise: str
    catches: str


TABLE: dict[str, Tolerance] = {t.stage: t for t in (
    Tolerance("patch_embed", "K = C*T*P*P (1176)", "terms: sqrt(sum_k (x_k w_k)^2) of each output", c=2.0, factor=2.0,
              noise="float32 0.09; bf16 target/baseline 0.84",
              catches="pixel_values rounded to bf16 in a float32 target: 430"),
    Tolerance("rotary_cos_sin", "K = 1", "angle: 1 + |position * inv_freq|", c=4.0, factor=2.0,
              noise="float32 0.5 (angles in float64, cos/sin rounded once)",
              catches="inv_freq rounded to bf16: 1.6e4 (float32), 9 (bf16, positions up to 512)"),
    Tolerance("apply_rotary", "K = 2", "pair: norm of the rotation pair (x_i, x_{i+d/2})", c=4.0, factor=2.0,
              noise="float32 0.5; bf16 target/baseline 1.0",
              catches="rotation pairs (i, i+1) instead of (i, i+d/2): 1e6"),
    Tolerance("attention", "K = max(head_dim, longest segment)", "rms(v) * (1 + rms(q) * rms(k)) over the token's segment, per head",
              c=2.0, factor=3.0, noise="float32 0.12; bf16 target/baseline 1.3",
              catches="scale 1/sqrt(head_dim) rounded to bf16: 35"),
    Tolerance("rms_norm", "K = hidden", "|reference| (the norm is multiplicative)", c=2.0, factor=2.0,
              noise="float32 0.13; bf16 target/baseline 1.0",
              catches="eps 1e-5 instead of 1e-6: 4.7 at rms 1, 5e4 at rms 0.01; fp16 squares: overflow"),
    Tolerance("mlp", "K = max(hidden, intermediate)", "rms of the reference output row", c=2.0, factor=2.0,
              noise="float32 0.18; bf16 target/baseline 1.1",
              catches="biases of gate/up dropped: 2e5; silu(x) as x*sigmoid(1.702x): 1e6"),
    Tolerance("vision_block", "K = max(hidden, intermediate, longest segment)", "rms of the reference output row",
              c=2.0, factor=2.0, noise="float32 0.12; bf16 target/baseline 1.1",
              catches="attention scale missing: 1e6; RMSNorm eps 1e-5: 9"),
    Tolerance("merger", "K = 4*hidden", "rms of the reference output row", c=2.0, factor=2.0,
              noise="float32 0.1; bf16 target/baseline 1.1",
              catches="tanh GELU instead of erf: 900"),
    Tolerance("vision_tower", "K = depth * max(1176, 4*hidden, intermediate, longest segment)",
              "rms of the reference output row", c=2.0, factor=2.0,
              noise="float32 0.2; bf16 target/baseline 1.2",
              catches="tanh GELU in the merger: 170; RMSNorm eps 1e-5: 4.5; attention scale missing: 1e6"),
)}


def normalized_error(out, ref, K: int, magnitude, dtype: str) -> np.ndarray:
    """|out - ref| / (eps(dtype) * sqrt(K) * magnitude), elementwise (NaN and infinity count as infinite)."""
    err = np.abs(np.asarray(out, dtype=np.float64) - np.asarray(ref, dtype=np.float64))
    err = np.where(np.isfinite(err), err, np.inf)
    scale = EPS[dtype] * np.sqrt(float(K)) * np.broadcast_to(np.asarray(magnitude, dtype=np.float64), err.shape)
    return err / np.maximum(scale, np.finfo(np.float64).tiny)


def allowed(stage: str, dtype: str, K: int, baseline_error: float | None = None) -> float:
    """The largest normalized error a target in `dtype` may have for `stage`."""
    tol = TABLE[stage]
    if dtype in LOW_PRECISION:
        if baseline_error is None:
            raise ValueError(f"{stage} in {dtype}: the low-precision rule needs the same-dtype baseline's error")
        return tol.factor * max(baseline_error, 1.0 / np.sqrt(float(K)))
    return tol.c


# Magnitudes: the size of each element's reduction inputs, shaped to broadcast against the output.

def terms(x, weight) -> np.ndarray:
    """For out = x @ weight.T: sqrt(sum_k (x_k w_k)^2) per output element."""
    x, weight = np.asarray(x, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    return np.sqrt((x * x) @ (weight * weight).T)


def row_rms(ref) -> np.ndarray:
    """The rms of each row of the reference output (over all axes but the first), shaped (N, 1, ...)."""
    ref = np.asarray(ref, dtype=np.float64)
    axes = tuple(range(1, ref.ndim))
    return np.sqrt(np.mean(ref * ref, axis=axes, keepdims=True))


def angle(position_ids, head_dim: int, theta: float = 10000.0) -> np.ndarray:
    """1 + |angle| of every cos/sin entry: a float32 angle carries an error of eps * |angle|."""
    from reference.rope import inv_freq
    pos = np.asarray(position_ids, dtype=np.float64)
    half = np.concatenate([pos[:, :1] * inv_freq(head_dim, theta), pos[:, 1:] * inv_freq(head_dim, theta)], axis=1)
    return 1.0 + np.abs(np.concatenate([half, half], axis=1))


def pair(x) -> np.ndarray:
    """The norm of each element's rotation pair (x_i, x_{i + d/2}) for x (N, heads, d)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sqrt(x * x + np.roll(x, x.shape[-1] // 2, axis=-1) ** 2)


def attention_scale(q, k, v, cu_seqlens) -> np.ndarray:
    """Per token and head: rms(v) * (1 + rms(q) * rms(k)) over the token's segment. A score q.k/sqrt(d) carries an
    error of about eps * rms(q) * rms(k) * sqrt(d), which moves the output by that much times |v|."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    out = np.empty(v.shape[:2] + (1,))
    cu = np.asarray(cu_seqlens)
    rms = lambda a: np.sqrt(np.mean(a * a, axis=(0, 2)))  # noqa: E731
    for a, b in zip(cu[:-1], cu[1:]):
        if b > a:
            out[a:b] = (rms(v[a:b]) * (1.0 + rms(q[a:b]) * rms(k[a:b])))[None, :, None]
    return out
