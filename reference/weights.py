"""Weights as dicts keyed by HF state-dict names: seeded random weights, loading and shape checks."""

from __future__ import annotations

import numpy as np

from vitspec.spec.validate import check_weights, expected_shapes  # noqa: F401 (the rule lives in spec)


def random_weights(config, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded float64 weights scaled so activations stay in a realistic range at any depth.

    Linear weights ~ N(0, 1/fan_in); the two projections that write into the residual stream are further
    scaled by 1/sqrt(2*depth); norm weights ~ 1 + N(0, 0.1^2); biases ~ N(0, 0.02^2).
    """
    rng = np.random.default_rng(seed)
    depth = max(1, config["depth"])
    out = {}
    for key, shape in expected_shapes(config).items():
        if key.endswith("norm1.weight") or key.endswith("norm2.weight") or key.endswith("ln_q.weight"):
            out[key] = 1.0 + 0.1 * rng.standard_normal(shape)
        elif key.endswith(".bias"):
            out[key] = 0.02 * rng.standard_normal(shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            scale = 1.0 / np.sqrt(fan_in)
            if key.endswith("attn.proj.weight") or key.endswith("down_proj.weight"):
                scale /= np.sqrt(2.0 * depth)
            out[key] = scale * rng.standard_normal(shape)
    return out


def _strip_prefix(state: dict) -> dict:
    """Drop any prefix before the vision tower's own names (checkpoints use 'visual.' or 'model.visual.')."""
    anchor = "patch_embed.proj.weight"
    prefixes = {k[: -len(anchor)] for k in state if k.endswith(anchor)}
    if len(prefixes) != 1:
        raise ValueError(f"state dict must hold exactly one '{anchor}' entry, found {len(prefixes)}")
    prefix = prefixes.pop()
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def from_state_dict(state_dict) -> dict[str, np.ndarray]:
    """A torch state_dict (or any mapping of arrays) as float64 NumPy arrays keyed by the tower's own names."""
    out = {}
    for k, v in _strip_prefix(dict(state_dict)).items():
        if hasattr(v, "detach"):
            v = v.detach().to("cpu").double().numpy()
        out[k] = np.asarray(v, dtype=np.float64)
    return out


def load_safetensors(path) -> dict[str, np.ndarray]:
    """Load the vision tower's weights from a .safetensors file (torch-free reader, any float dtype)."""
    from safetensors.torch import load_file  # bf16 checkpoints need torch to widen

    return from_state_dict(load_file(str(path)))
