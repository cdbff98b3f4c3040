"""The target protocol: one object whose methods are the pipeline stages.

A target is any object with some of the methods below. The suite checks every method a target has
against ``reference.TARGET`` and reports the others as "not covered" (never as passed). Arrays go in
as NumPy (float64 for floats, int64 for indices); a target may return NumPy arrays or torch tensors.
Weights are dicts keyed by HF state-dict names; ``params`` arguments are the sub-dict of one module
with its prefix removed (see ``subdict``). Configs use HF's vision-config field names.

Optional attributes: ``name`` (str), ``dtype`` (the compute dtype's name, default "float64"),
``device`` (default "cpu"), and ``with_options(device=..., dtype=...)`` returning a configured copy.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    module: str  # the spec stage: reference/<module>.py, impl/<module>.py, tests/test_<module>.py
    signature: str
    rule: str


STAGES: tuple[Stage, ...] = (
    Stage("smart_resize", "resize",
          "smart_resize(height, width, factor=28, min_pixels=3136, max_pixels=12845056, variant='hf') -> (h, w)",
          "round to multiples of factor (ties to even), rescale into [min_pixels, max_pixels], ratio <= 200"),
    Stage("resize", "resize",
          "resize(image uint8 (H, W, 3), height, width) -> uint8 (height, width, 3)",
          "bicubic resampling bit-identical to Pillow Image.resize(BICUBIC)"),
    Stage("preprocess", "pixels",
          "preprocess(images: list of uint8 (H, W, 3) images or (F, H, W, 3) videos, min_pixels=3136, "
          "max_pixels=12845056) -> (pixel_values float (N, C*T*P*P), grid_thw int64 (n, 3))",
          "smart_resize, bicubic, rescale 1/255, CLIP normalize, temporal pairing, flatten"),
    Stage("patchify", "patchify",
          "patchify(frames float (F, C, H, W), patch_size=14, temporal_patch_size=2, merge_size=2) "
          "-> (pixel_values (N, C*T*P*P), grid_thw int64 (3,))",
          "rows in merge-block order, columns in (C, T, P, P) order"),
    Stage("patch_embed", "embed",
          "patch_embed(pixel_values (N, C*T*P*P), weight (D, C, T, P, P)) -> (N, D)",
          "Conv3d with kernel = stride, no bias"),
    Stage("rotary_position_ids", "rope",
          "rotary_position_ids(grid_thw (n, 3), merge_size=2) -> int64 (N, 2) of (row, col)",
          "patch coordinates in merge-block order, tiled over frames"),
    Stage("rotary_cos_sin", "rope",
          "rotary_cos_sin(position_ids (N, 2), head_dim, theta=10000.0) -> (cos, sin) each (N, head_dim)",
          "angles [row*inv_freq, col*inv_freq] duplicated to head_dim"),
    Stage("apply_rotary", "rope",
          "apply_rotary(x (N, heads, head_dim), cos, sin) -> (N, heads, head_dim)",
          "x*cos + rotate_half(x)*sin"),
    Stage("window_index", "windows",
          "window_index(grid_thw, window_size=112, patch_size=14, merge_size=2) -> (window_index int64 (N/4,), "
          "cu_window_seqlens int64)",
          "4x4-cell windows tiled from the top-left per image and frame, zero-length windows removed"),
    Stage("cu_seqlens", "windows",
          "cu_seqlens(grid_thw) -> int64 (segments + 1,)",
          "one full-attention segment per image per frame"),
    Stage("attention", "attention",
          "attention(q, k, v each (N, heads, head_dim), cu_seqlens) -> (N, heads, head_dim)",
          "softmax(q k^T / sqrt(head_dim)) v inside each segment, never across"),
    Stage("rms_norm", "block",
          "rms_norm(x (N, D), weight (D,), eps=1e-6) -> (N, D)",
          "x / sqrt(mean(x^2) + eps) * weight, statistics in float32 or wider"),
    Stage("mlp", "block",
          "mlp(x (N, D), params{gate_proj,up_proj,down_proj}.{weight,bias}) -> (N, D)",
          "down(silu(gate(x)) * up(x))"),
    Stage("vision_block", "block",
          "vision_block(x (N, D), params (blocks.i sub-dict), cu_seqlens, cos, sin, num_heads, eps=1e-6) -> (N, D)",
          "x + attn(norm1(x)); x + mlp(norm2(x))"),
    Stage("merger", "merger",
          "merger(x (N, D), params (merger sub-dict), merge_size=2, eps=1e-6) -> (N/4, out_hidden_size)",
          "RMSNorm, 4 consecutive rows concatenated, Linear, erf GELU, Linear"),
    Stage("vision_tower", "tower",
          "vision_tower(pixel_values (N, C*T*P*P), grid_thw (n, 3), weights, config) -> (N/4, out_hidden_size)",
          "embed, window-permute, blocks (full at fullatt_block_indexes), merger, back to raster order"),
    Stage("num_image_tokens", "tokens",
          "num_image_tokens(grid_thw, merge_size=2) -> int64 (n,)",
          "t*h*w / merge_size**2 per image"),
)

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16", "float64")


def stage(name: str) -> Stage:
    """The Stage record of one stage name."""
    for s in STAGES:
        if s.name == name:
            return s
    raise ValueError(f"stage must be one of {list(STAGE_NAMES)}, got {name!r}")


def subdict(weights: dict, prefix: str) -> dict:
    """The entries of a state dict under ``prefix.`` with the prefix removed."""
    head = prefix.rstrip(".") + "."
    return {k[len(head):]: v for k, v in weights.items() if k.startswith(head)}


def load_target(spec: str):
    """Load a target from ``package.module:attr`` (the attr may be an object or a zero-argument factory)."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"target must be written 'package.module:attr', got {spec!r}")
    module_name, attr = spec.split(":")
    import os
    import sys
    if os.getcwd() not in sys.path:  # a user's adapter module in the current directory
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"target {spec!r}: cannot import module {module_name!r} ({e})") from e
    if not hasattr(module, attr):
        raise ValueError(f"target {spec!r}: module {module_name!r} has no attribute {attr!r}")
    obj = getattr(module, attr)
    if isinstance(obj, type) or (callable(obj) and not any(hasattr(obj, s) for s in STAGE_NAMES)):
        obj = obj()
    return obj


def provided_stages(target) -> list[str]:
    """Stage names the target implements."""
    return [s for s in STAGE_NAMES if callable(getattr(target, s, None))]


def default_target() -> str:
    return os.environ.get("VITSPEC_TARGET") or "vitspec.impl:TARGET"


def configured_target(spec: str, device: str | None = None, dtype: str | None = None):
    """The target named `spec`, moved to device / dtype with its with_options; ValueError when impossible."""
    if device is not None and device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    try:
        target = load_target(spec)
    except ImportError as e:
        raise ValueError(f"target {spec!r}: {e}") from e
    if device is None and dtype is None:
        return target
    if callable(getattr(target, "with_options", None)):
        return target.with_options(**{k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None})
    if (device or "cpu") != getattr(target, "device", "cpu") or (dtype or "float64") != getattr(target, "dtype", "float64"):
        raise ValueError(f"target {spec!r} has no with_options(device=..., dtype=...) for --device/--dtype")
    return target
