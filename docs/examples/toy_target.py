"""A worked adapter: three stages of someone's own implementation exposed as a vitspec target.

Run from the repository root (any directory on sys.path works the same):

    vitspec verify --target docs.examples.toy_target:TARGET

The three stages below are checked against the float64 reference; every other protocol stage is
reported as "not covered", never as passed.
"""

from __future__ import annotations

import numpy as np

from vitspec.spec.validate import grid_rows, positive_float, require_float, require_ndim


# --- "your kernels": plain functions with their own names and conventions -------------------------
def frame_segments(grid):  # one attention segment per (image, frame), as cumulative offsets
    lengths = [h * w for t, h, w in grid for _ in range(t)]
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def llm_tokens(grid, merge):  # placeholder tokens per image
    return np.array([t * h * w // (merge * merge) for t, h, w in grid], dtype=np.int64)


def rmsnorm_fp32(x, gamma, eps):  # statistics in float32, as a kernel would do them
    x32 = x.astype(np.float32)
    inv = 1.0 / np.sqrt(np.mean(x32 * x32, axis=-1, keepdims=True) + np.float32(eps))
    return (x32 * inv) * gamma.astype(np.float32)


# --- the adapter: protocol names and signatures (spec/protocol.py) ---------------------------------
# Bad input must raise the protocol's TypeError/ValueError naming the argument; the adapter gets that by
# validating with vitspec's shared rules (spec/validate.py) before calling the kernels.
class ToyTarget:
    name = "toy"
    # What the suite may expect (spec/protocol.py Capabilities): it rejects bad input as the protocol prescribes,
    # so the bad-input checks count for it; undeclared keys take their defaults.
    capabilities = {"validates_inputs": True}
    dtype = "float32"  # the suite judges float results with the float32 row of its tolerance table
    device = "cpu"

    def cu_seqlens(self, grid_thw):
        return frame_segments(grid_rows(grid_thw))

    def num_image_tokens(self, grid_thw, merge_size=2):
        return llm_tokens(grid_rows(grid_thw, merge_size), merge_size)

    def rms_norm(self, x, weight, eps=1e-6):
        require_ndim("x", x, 2, "(num_tokens, hidden)")
        require_ndim("weight", weight, 1, "(hidden,)")
        require_float("weight", weight)
        if weight.shape[0] != x.shape[1]:
            raise ValueError(f"weight must have shape ({x.shape[1]},) to match x, got {tuple(weight.shape)}")
        return rmsnorm_fp32(np.asarray(x), np.asarray(weight), positive_float("eps", eps))


TARGET = ToyTarget()
