"""Input rules shared by every target in this package (reference and impl raise the same errors).

Each check names the argument and the rule it enforces; nothing is truncated, rounded or
reinterpreted. Errors are TypeError for a wrong kind of value and ValueError for a wrong value.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from vitspec.spec.configs import PREPROCESSOR, VIDEO_PREPROCESSOR


def positive_int(name: str, value: Any) -> int:
    """An integer > 0 (Python or NumPy integer; bool and float are refused, even 28.0)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def non_negative_int(name: str, value: Any) -> int:
    """An integer >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value}")
    return int(value)


def positive_float(name: str, value: Any) -> float:
    """A finite real number > 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of a NumPy array or torch tensor."""
    return tuple(int(s) for s in x.shape)


def _dtype_kind(x: Any) -> str:
    """'f' floating, 'c' complex, 'i'/'u' integer, 'b' bool, 'O' other, for NumPy arrays and torch tensors."""
    dt = x.dtype
    if hasattr(dt, "is_floating_point"):  # torch
        return "c" if dt.is_complex else "f" if dt.is_floating_point else "b" if str(dt) == "torch.bool" else "i"
    return np.dtype(dt).kind


def require_float(name: str, x: Any) -> None:
    """Weights hold real floating-point values (integers, bool and complex are refused, never cast)."""
    if _dtype_kind(x) != "f":
        raise TypeError(f"{name} must hold real floating-point values, got dtype {x.dtype}")


def require_ndim(name: str, x: Any, ndim: int | Sequence[int], layout: str, values: str = "real numbers") -> None:
    """x has one of the allowed numbers of dimensions; layout spells the expected axes; complex is never valid."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name} must be an array of shape {layout}, got {type(x).__name__}")
    if _dtype_kind(x) in "cO":
        raise TypeError(f"{name} must hold {values}, got dtype {x.dtype} (complex values are never accepted)")
    if len(x.shape) not in allowed:
        raise ValueError(f"{name} must have shape {layout}, got shape {shape_of(x)}")


def require_dim(name: str, x: Any, axis: int, size: int, rule: str) -> None:
    """x.shape[axis] == size, with the rule that fixes the size in the message."""
    if int(x.shape[axis]) != size:
        raise ValueError(f"{name} must have {size} {rule} along axis {axis}, got shape {shape_of(x)}")


def grid_rows(grid_thw: Any, merge_size: int = 2) -> list[tuple[int, int, int]]:
    """grid_thw as a list of (t, h, w) patch-unit rows: integers, t >= 1, h and w positive multiples of merge_size."""
    merge_size = positive_int("merge_size", merge_size)
    if isinstance(grid_thw, (list, tuple)):
        arr = np.asarray(grid_thw)
    elif hasattr(grid_thw, "detach"):
        arr = grid_thw.detach().cpu().numpy()
    elif isinstance(grid_thw, np.ndarray):
        arr = grid_thw
    else:
        raise TypeError(f"grid_thw must be an integer array of shape (num_images, 3), got {type(grid_thw).__name__}")
    if arr.ndim == 1 and arr.shape[0] == 3:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise ValueError(f"grid_thw must have shape (num_images, 3) with at least one row, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"grid_thw must hold integers (t, h, w in patch units), got dtype {arr.dtype}")
    rows = []
    for i, (t, h, w) in enumerate(arr.tolist()):
        if t < 1 or h < 1 or w < 1:
            raise ValueError(f"grid_thw[{i}] = {[t, h, w]}: t, h and w must be positive")
        if h % merge_size or w % merge_size:
            raise ValueError(f"grid_thw[{i}] = {[t, h, w]}: h and w must be multiples of merge_size={merge_size}")
        rows.append((int(t), int(h), int(w)))
    return rows


def num_patches(rows: Sequence[tuple[int, int, int]]) -> int:
    """Total patch rows t*h*w over all images."""
    return sum(t * h * w for t, h, w in rows)


def require_rows_match_grid(name: str, x: Any, rows: Sequence[tuple[int, int, int]], per: int = 1) -> None:
    """x has one row per patch (per=1) or per merged cell (per=merge_size**2) of grid_thw."""
    expected = num_patches(rows) // per
    if int(x.shape[0]) != expected:
        raise ValueError(f"{name} has {int(x.shape[0])} rows but grid_thw {list(map(list, rows))} describes {expected}")


def require_keys(
    name: str, params: dict, keys: Sequence[str], shapes: dict[str, tuple[int, ...]] | None = None
) -> None:
    """A weights dict holds every key, each with the expected shape when one is given."""
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict of arrays keyed by state-dict names, got {type(params).__name__}")
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"{name} is missing weights {missing}")
    for key in keys:
        if not hasattr(params[key], "dtype"):
            raise TypeError(f"{name}[{key!r}] must be an array, got {type(params[key]).__name__}")
        require_float(f"{name}[{key!r}]", params[key])
    for key, shape in (shapes or {}).items():
        got = shape_of(params[key])
        if got != tuple(shape):
            raise ValueError(f"{name}[{key!r}] must have shape {tuple(shape)}, got {got}")


def require_finite(name: str, finite: bool) -> None:
    """Values must be finite (no NaN or infinity)."""
    if not finite:
        raise ValueError(f"{name} must hold finite values (found NaN or infinity)")


def patch_geometry(patch_size: Any, temporal_patch_size: Any, merge_size: Any) -> tuple[int, int, int]:
    """(P, T, m), each a positive integer."""
    return (
        positive_int("patch_size", patch_size),
        positive_int("temporal_patch_size", temporal_patch_size),
        positive_int("merge_size", merge_size),
    )


def require_frames_fit(F: int, H: int, W: int, P: int, T: int, m: int) -> None:
    """Frames (F, C, H, W) to patchify: F a positive multiple of T; H and W positive multiples of P*m."""
    if F == 0 or F % T:
        raise ValueError(f"frames must hold a positive multiple of temporal_patch_size={T} frames, got {F}")
    if H == 0 or W == 0 or H % (P * m) or W % (P * m):
        raise ValueError(
            f"frames height and width must be positive multiples of patch_size*merge_size={P * m}, got {H}x{W}"
        )


def require_image_list(media: Any) -> None:
    """preprocess's media: a non-empty list (or tuple) of image and video arrays."""
    if not isinstance(media, (list, tuple)):
        raise TypeError(f"media must be a list of image or video arrays, got {type(media).__name__}")
    if len(media) == 0:
        raise ValueError("media must hold at least one image or video")


def rotary_input(rotary: Any, num_tokens: int, head_dim: int, form: str):
    """The rotary argument in the form a target declares (spec/protocol.py Capabilities.rotary):
    "angles": one real array (num_tokens, head_dim/2); "cos_sin": a pair (cos, sin), each (num_tokens, head_dim).
    Returns the array (angles) or the pair (cos, sin), unchanged."""
    if form == "angles":
        if isinstance(rotary, (list, tuple)):
            raise TypeError(
                f"rotary must be the angles array of shape ({num_tokens}, {head_dim // 2}) "
                f"(num_tokens, head_dim/2), got a {type(rotary).__name__} of {len(rotary)} items "
                "(this target takes rotary='angles', not (cos, sin))"
            )
        require_ndim("rotary", rotary, 2, f"({num_tokens}, {head_dim // 2}) (num_tokens, head_dim/2)")
        require_float("rotary", rotary)
        if shape_of(rotary) != (num_tokens, head_dim // 2):
            raise ValueError(
                f"rotary must have shape ({num_tokens}, {head_dim // 2}) (num_tokens, head_dim/2), "
                f"got shape {shape_of(rotary)}"
            )
        return rotary
    if form == "cos_sin":
        if not isinstance(rotary, (list, tuple)) or len(rotary) != 2:
            raise TypeError(
                f"rotary must be a pair (cos, sin), each of shape ({num_tokens}, {head_dim}) "
                f"(num_tokens, head_dim), got {type(rotary).__name__}"
            )
        for name, a in zip(("cos", "sin"), rotary):
            require_ndim(f"rotary {name}", a, 2, f"({num_tokens}, {head_dim}) (num_tokens, head_dim)")
            require_float(f"rotary {name}", a)
            if shape_of(a) != (num_tokens, head_dim):
                raise ValueError(
                    f"rotary {name} must have shape ({num_tokens}, {head_dim}) (num_tokens, head_dim), "
                    f"got shape {shape_of(a)}"
                )
        return tuple(rotary)
    raise ValueError(f"rotary form must be one of ['angles', 'cos_sin'], got {form!r}")


def require_cu_seqlens(cu_seqlens: Any, total: int) -> np.ndarray:
    """cu_seqlens: integers (num_segments + 1,) rising from 0 (never decreasing) to the number of tokens."""
    require_ndim("cu_seqlens", cu_seqlens, 1, "(num_segments + 1,)")
    cu = np.asarray(cu_seqlens.detach().cpu() if hasattr(cu_seqlens, "detach") else cu_seqlens)
    if not np.issubdtype(cu.dtype, np.integer):
        raise TypeError(f"cu_seqlens must hold integers, got dtype {cu.dtype}")
    if cu.size < 2 or cu[0] != 0 or cu[-1] != total or np.any(np.diff(cu) < 0):
        raise ValueError(
            f"cu_seqlens must rise from 0 to the number of tokens {total}, got {cu.tolist()[:8]}"
            f"{'...' if cu.size > 8 else ''} ending at {int(cu[-1]) if cu.size else None}"
        )
    return cu.astype(np.int64)


ATTENTION_KEYS = ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias")


def attention_module_inputs(x: Any, params: Any, cu_seqlens: Any, rotary: Any, num_heads: Any, form: str):
    """attention_module's inputs: x (N, D) real; params the blocks.i.attn sub-dict (qkv (3D, D) and (3D,), proj
    (D, D) and (D,)); num_heads a positive integer dividing D; cu_seqlens and rotary (in `form`) for N tokens.
    Returns (N, D, num_heads, cu_seqlens as int64 NumPy)."""
    require_ndim("x", x, 2, "(num_tokens, hidden)")
    N, D = shape_of(x)
    H = positive_int("num_heads", num_heads)
    if D % H:
        raise ValueError(f"num_heads must divide the hidden size {D}, got {H}")
    require_keys(
        "params",
        params,
        ATTENTION_KEYS,
        {"qkv.weight": (3 * D, D), "qkv.bias": (3 * D,), "proj.weight": (D, D), "proj.bias": (D,)},
    )
    cu = require_cu_seqlens(cu_seqlens, N)
    rotary_input(rotary, N, D // H, form)
    return N, D, H, cu


def rotary_head_dim(head_dim: Any, theta: Any) -> tuple[int, float]:
    """RoPE's (head_dim, theta): head_dim a positive multiple of 4 (two axes, rotation pairs), theta finite > 0."""
    head_dim, theta = positive_int("head_dim", head_dim), positive_float("theta", theta)
    if head_dim % 4:
        raise ValueError(f"head_dim must be a multiple of 4 (two axes, rotation pairs), got {head_dim}")
    return head_dim, theta


def window_geometry(window_size: Any, patch_size: Any, merge_size: Any) -> tuple[int, int, int]:
    """(window_size, patch_size, merge_size), positive integers; a window covers at least one merged cell."""
    window_size, patch_size = positive_int("window_size", window_size), positive_int("patch_size", patch_size)
    merge_size = positive_int("merge_size", merge_size)
    if window_size < patch_size * merge_size:
        raise ValueError(f"window_size must cover at least one merged cell (patch_size*merge_size), got {window_size}")
    return window_size, patch_size, merge_size


MLP_KEYS = (
    "gate_proj.weight",
    "gate_proj.bias",
    "up_proj.weight",
    "up_proj.bias",
    "down_proj.weight",
    "down_proj.bias",
)
BLOCK_KEYS = (
    "norm1.weight",
    "norm2.weight",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
) + tuple("mlp." + k for k in MLP_KEYS)
MERGER_KEYS = ("ln_q.weight", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias")
CONFIG_FIELDS = (
    "depth",
    "hidden_size",
    "num_heads",
    "intermediate_size",
    "out_hidden_size",
    "patch_size",
    "spatial_merge_size",
    "temporal_patch_size",
    "window_size",
    "fullatt_block_indexes",
    "in_channels",
)


def check_mlp_params(params: Any, D: int) -> None:
    """The MLP weights hold every key, float, with shapes matching the hidden size D (any intermediate size)."""
    inter = shape_of(params["gate_proj.weight"])[0] if isinstance(params, dict) and "gate_proj.weight" in params else 0
    require_keys(
        "params",
        params,
        MLP_KEYS,
        {
            "gate_proj.weight": (inter, D),
            "gate_proj.bias": (inter,),
            "up_proj.weight": (inter, D),
            "up_proj.bias": (inter,),
            "down_proj.weight": (D, inter),
            "down_proj.bias": (D,),
        },
    )


def check_block_params(params: Any, D: int) -> None:
    """The block weights (blocks.i sub-dict) hold every key, float, with shapes matching the hidden size D."""
    require_keys(
        "params",
        params,
        BLOCK_KEYS,
        {
            "norm1.weight": (D,),
            "norm2.weight": (D,),
            "attn.qkv.weight": (3 * D, D),
            "attn.qkv.bias": (3 * D,),
            "attn.proj.weight": (D, D),
            "attn.proj.bias": (D,),
        },
    )
    check_mlp_params({k[len("mlp.") :]: v for k, v in params.items() if k.startswith("mlp.")}, D)


def check_merger_params(params: Any, D: int, unit: int) -> None:
    """The merger weights hold every key, float, shaped for hidden size D and unit = merge_size**2 rows per token."""
    out_dim = shape_of(params["mlp.2.weight"])[0] if isinstance(params, dict) and "mlp.2.weight" in params else 0
    require_keys(
        "params",
        params,
        MERGER_KEYS,
        {
            "ln_q.weight": (D,),
            "mlp.0.weight": (unit * D, unit * D),
            "mlp.0.bias": (unit * D,),
            "mlp.2.weight": (out_dim, unit * D),
            "mlp.2.bias": (out_dim,),
        },
    )


def check_config(config: Any) -> dict:
    """A vision config with HF's field names; every geometric field a positive integer, full blocks within depth."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict with HF vision-config field names, got {type(config).__name__}")
    missing = [f for f in CONFIG_FIELDS if f not in config]
    if missing:
        raise ValueError(f"config is missing fields {missing}")
    for f in CONFIG_FIELDS:
        if f != "fullatt_block_indexes":
            positive_int(f"config['{f}']", config[f])
    depth = config["depth"]
    for i in config["fullatt_block_indexes"]:
        if non_negative_int("config['fullatt_block_indexes'] entry", i) >= depth:
            raise ValueError(f"config['fullatt_block_indexes'] must lie in [0, depth={depth}), got {i}")
    if config["hidden_size"] % config["num_heads"]:
        raise ValueError(f"config['num_heads']={config['num_heads']} must divide hidden_size={config['hidden_size']}")
    return config


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Every weight of the vision tower with its shape, for a config with HF's field names."""
    D, I, out = config["hidden_size"], config["intermediate_size"], config["out_hidden_size"]
    C, T, P, m = (
        config["in_channels"],
        config["temporal_patch_size"],
        config["patch_size"],
        config["spatial_merge_size"],
    )
    shapes = {"patch_embed.proj.weight": (D, C, T, P, P)}
    for i in range(config["depth"]):
        b = f"blocks.{i}."
        shapes.update(
            {
                b + "norm1.weight": (D,),
                b + "norm2.weight": (D,),
                b + "attn.qkv.weight": (3 * D, D),
                b + "attn.qkv.bias": (3 * D,),
                b + "attn.proj.weight": (D, D),
                b + "attn.proj.bias": (D,),
                b + "mlp.gate_proj.weight": (I, D),
                b + "mlp.gate_proj.bias": (I,),
                b + "mlp.up_proj.weight": (I, D),
                b + "mlp.up_proj.bias": (I,),
                b + "mlp.down_proj.weight": (D, I),
                b + "mlp.down_proj.bias": (D,),
            }
        )
    M = D * m * m
    shapes.update(
        {
            "merger.ln_q.weight": (D,),
            "merger.mlp.0.weight": (M, M),
            "merger.mlp.0.bias": (M,),
            "merger.mlp.2.weight": (out, M),
            "merger.mlp.2.bias": (out,),
        }
    )
    return shapes


def check_weights(weights: Any, config: dict) -> None:
    """Every expected key of the tower's weights is present with its expected shape."""
    shapes = expected_shapes(config)
    require_keys("weights", weights, list(shapes), shapes)


# ---- stage input rules ---------------------------------------------------------------------------------------------
# One function per protocol stage whose reference function is pure math: reference.TARGET (reference/target.py)
# applies it where the stage is called, so reference/<module>.py holds the formulas only.


def patch_embed_inputs(pixel_values: Any, weight: Any) -> None:
    """pixel_values (N, C·T·P·P) real; weight (D, C, T, P, P) float with a square patch kernel, C·T·P·P columns."""
    require_ndim("pixel_values", pixel_values, 2, "(num_patches, channels*temporal*patch*patch)")
    require_ndim("weight", weight, 5, "(hidden, channels, temporal, patch, patch)")
    require_float("weight", weight)
    D, C, T, P, P2 = shape_of(weight)
    if P != P2:
        raise ValueError(f"weight must have a square patch kernel, got shape {shape_of(weight)}")
    if shape_of(pixel_values)[1] != C * T * P * P:
        raise ValueError(
            f"pixel_values rows must hold channels*temporal*patch*patch = {C * T * P * P} values "
            f"for weight shape {shape_of(weight)}, got {shape_of(pixel_values)[1]}"
        )


def rms_norm_inputs(x: Any, weight: Any, eps: Any) -> None:
    """x (N, D) real; weight (D,) float; eps a finite float > 0."""
    require_ndim("x", x, 2, "(num_tokens, hidden)")
    require_ndim("weight", weight, 1, "(hidden,)")
    require_float("weight", weight)
    positive_float("eps", eps)
    if shape_of(weight)[0] != shape_of(x)[1]:
        raise ValueError(f"weight must have shape ({shape_of(x)[1]},) to match x, got {shape_of(weight)}")


def mlp_inputs(x: Any, params: Any) -> None:
    """x (N, D) real; params the blocks.i.mlp sub-dict with shapes for D."""
    require_ndim("x", x, 2, "(num_tokens, hidden)")
    check_mlp_params(params, shape_of(x)[1])


def vision_block_inputs(x: Any, params: Any, cu_seqlens: Any, rotary: Any, num_heads: Any, eps: Any, form: str) -> None:
    """x (N, D) real; num_heads a positive integer dividing D; eps > 0; params the blocks.i sub-dict for D;
    cu_seqlens and rotary (in `form`) for N tokens."""
    require_ndim("x", x, 2, "(num_tokens, hidden)")
    N, D = shape_of(x)
    H = positive_int("num_heads", num_heads)
    positive_float("eps", eps)
    if D % H:
        raise ValueError(f"num_heads must divide the hidden size {D}, got {H}")
    check_block_params(params, D)
    require_cu_seqlens(cu_seqlens, N)
    rotary_input(rotary, N, D // H, form)


def attention_inputs(q: Any, k: Any, v: Any, cu_seqlens: Any) -> None:
    """q, k, v real (N, heads, head_dim), one shape; cu_seqlens for N tokens."""
    for name, a in (("q", q), ("k", k), ("v", v)):
        require_ndim(name, a, 3, "(num_tokens, heads, head_dim)")
    if shape_of(k) != shape_of(q) or shape_of(v) != shape_of(q):
        raise ValueError(f"q, k and v must have the same shape, got {shape_of(q)}, {shape_of(k)}, {shape_of(v)}")
    require_cu_seqlens(cu_seqlens, shape_of(q)[0])


def apply_rotary_inputs(x: Any, rotary: Any, form: str) -> None:
    """x real (N, heads, head_dim); rotary in `form` for N tokens of head_dim."""
    require_ndim("x", x, 3, "(num_tokens, heads, head_dim)")
    rotary_input(rotary, shape_of(x)[0], shape_of(x)[2], form)


def rotary_angles_inputs(position_ids: Any, head_dim: Any, theta: Any) -> None:
    """position_ids (N, 2) of (row, col); head_dim a positive multiple of 4; theta finite > 0."""
    require_ndim("position_ids", position_ids, 2, "(num_tokens, 2)")
    if shape_of(position_ids)[1] != 2:
        raise ValueError(f"position_ids must have shape (num_tokens, 2) of (row, col), got {shape_of(position_ids)}")
    rotary_head_dim(head_dim, theta)


def merger_inputs(x: Any, params: Any, merge_size: Any, eps: Any) -> None:
    """x (N, D) real with N a multiple of merge_size²; eps > 0; params the merger dict for D."""
    require_ndim("x", x, 2, "(num_patches, hidden)")
    unit = positive_int("merge_size", merge_size) ** 2
    positive_float("eps", eps)
    N, D = shape_of(x)
    if N % unit:
        raise ValueError(f"x must have a multiple of merge_size**2 = {unit} rows, got {N}")
    check_merger_params(params, D, unit)


def vision_tower_inputs(pixel_values: Any, grid_thw: Any, weights: Any, config: Any) -> None:
    """config a vision config (check_config); grid_thw rows for its merge size; pixel_values (N, C·T·P·P) with one
    row per patch of the grid; weights every tower weight with its shape for the config."""
    cfg = check_config(config)
    rows = grid_rows(grid_thw, cfg["spatial_merge_size"])
    require_ndim("pixel_values", pixel_values, 2, "(num_patches, channels*temporal*patch*patch)")
    require_rows_match_grid("pixel_values", pixel_values, rows)
    check_weights(weights, cfg)
    patch_embed_inputs(pixel_values, weights["patch_embed.proj.weight"])


def patchify_inputs(frames: Any, patch_size: Any, temporal_patch_size: Any, merge_size: Any) -> None:
    """(P, T, m) positive integers; frames (F, C, H, W) finite real with F a positive multiple of T and H, W
    positive multiples of P·m."""
    P, T, m = patch_geometry(patch_size, temporal_patch_size, merge_size)
    require_ndim("frames", frames, 4, "(frames, channels, height, width)")
    values = np.asarray(frames.detach().cpu() if hasattr(frames, "detach") else frames, dtype=np.float64)
    require_finite("frames", bool(np.isfinite(values).all()))
    F, C, H, W = values.shape
    require_frames_fit(F, H, W, P, T, m)


def resize_inputs(image: Any, height: Any, width: Any) -> None:
    """image a uint8 (H, W, 3) array with H, W > 0; height and width positive integers."""
    require_ndim("image", image, 3, "(height, width, 3)", "uint8 pixels")
    require_dim("image", image, 2, 3, "channels (RGB)")
    pixels = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    if pixels.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got dtype {pixels.dtype}")
    if shape_of(image)[0] == 0 or shape_of(image)[1] == 0:
        raise ValueError(f"image must have positive height and width, got shape {shape_of(image)}")
    positive_int("height", height), positive_int("width", width)


# ---- preprocessing: smart_resize, preprocess and the pixel steps -------------------------------------------------

MAX_ASPECT_RATIO = 200
VARIANTS = ("hf", "qvu")
VIDEO_RULES = ("per_frame", "frames_budget")
ALPHA_POLICIES = ("drop", "white")


def require_aspect_ratio(h: int, w: int) -> None:
    """The longer side is at most MAX_ASPECT_RATIO times the shorter one (exactly 200 passes)."""
    if max(h, w) > MAX_ASPECT_RATIO * min(h, w):
        raise ValueError(f"absolute aspect ratio must be at most {MAX_ASPECT_RATIO}, got {h}x{w}")


def require_uint8(name: str, image: Any) -> None:
    """uint8 pixels, a NumPy array or torch tensor (pixel data is never reinterpreted from another dtype)."""
    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        raise TypeError(f"{name} must be a uint8 array, got {type(image).__name__}")
    if str(image.dtype) not in ("uint8", "torch.uint8"):
        raise TypeError(f"{name} must be uint8, got dtype {image.dtype}")


def smart_resize_inputs(height: Any, width: Any, factor: Any, min_pixels: Any, max_pixels: Any, variant: Any) -> None:
    """height, width, factor, min_pixels, max_pixels positive integers; variant 'hf' or 'qvu' (for 'qvu',
    max_pixels >= min_pixels); aspect ratio at most 200 (SPEC-NOTES §1.1)."""
    h, w = positive_int("height", height), positive_int("width", width)
    positive_int("factor", factor)
    lo, hi = positive_int("min_pixels", min_pixels), positive_int("max_pixels", max_pixels)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    if variant == "qvu" and hi < lo:
        raise ValueError(f"max_pixels must be >= min_pixels for variant 'qvu', got {hi} < {lo}")
    require_aspect_ratio(h, w)


def video_size_inputs(
    frames: Any,
    height: Any,
    width: Any,
    factor: Any,
    min_pixels: Any,
    max_pixels: Any,
    temporal_patch_size: Any,
    video_rule: Any,
    variant: Any,
) -> None:
    """video_rule 'per_frame' (smart_resize_inputs on the frame size) or 'frames_budget': frames, sides, factor,
    budgets and temporal_patch_size positive integers, at least temporal_patch_size frames, and the aspect ratio at
    most 200 once sides below factor are scaled up to it (as the rule scales them: float factor, truncated)."""
    if video_rule not in VIDEO_RULES:
        raise ValueError(f"video_rule must be one of {list(VIDEO_RULES)}, got {video_rule!r}")
    if video_rule == "per_frame":
        smart_resize_inputs(height, width, factor, min_pixels, max_pixels, variant)
        return
    F, T = positive_int("frames", frames), positive_int("temporal_patch_size", temporal_patch_size)
    h, w, f = positive_int("height", height), positive_int("width", width), positive_int("factor", factor)
    positive_int("min_pixels", min_pixels), positive_int("max_pixels", max_pixels)
    if F < T:
        raise ValueError(f"video_rule 'frames_budget' needs at least temporal_patch_size={T} frames, got {F}")
    if h < f or w < f:
        scale = max(f / h, f / w)
        h, w = int(h * scale), int(w * scale)
    require_aspect_ratio(h, w)


def preprocess_inputs(
    media: Any,
    image_min_pixels: Any = PREPROCESSOR["min_pixels"],
    image_max_pixels: Any = PREPROCESSOR["max_pixels"],
    video_min_pixels: Any = VIDEO_PREPROCESSOR["min_pixels"],
    video_max_pixels: Any = VIDEO_PREPROCESSOR["max_pixels"],
    patch_size: Any = 14,
    temporal_patch_size: Any = 2,
    merge_size: Any = 2,
    variant: Any = "hf",
    video_rule: Any = "per_frame",
) -> None:
    """(P, T, m) positive integers; media a non-empty list of uint8 (H, W, 3) images and (F, H, W, 3) videos, each
    with at least one frame and positive sides; the four budgets positive integers; each image's size obeys
    smart_resize_inputs (image budget, factor P·m), each video's video_size_inputs (video budget, video_rule)."""
    P, T, m = patch_geometry(patch_size, temporal_patch_size, merge_size)
    require_image_list(media)
    image_min_pixels, image_max_pixels, video_min_pixels, video_max_pixels = (
        positive_int(name, value)
        for name, value in (
            ("image_min_pixels", image_min_pixels),
            ("image_max_pixels", image_max_pixels),
            ("video_min_pixels", video_min_pixels),
            ("video_max_pixels", video_max_pixels),
        )
    )
    for i, item in enumerate(media):
        name = f"media[{i}]"
        require_ndim(name, item, (3, 4), "(height, width, 3) or (frames, height, width, 3)", "uint8 pixels")
        require_uint8(name, item)
        shape = shape_of(item)
        video = len(shape) == 4
        F, H, W, C = shape if video else (1, *shape)
        if C != 3:
            raise ValueError(f"{name} must have 3 channels (RGB) on its last axis, got shape {shape}")
        if 0 in (F, H, W):
            raise ValueError(f"{name} must have at least one frame and positive height and width, got {shape}")
        if video:
            video_size_inputs(F, H, W, P * m, video_min_pixels, video_max_pixels, T, video_rule, variant)
        else:
            smart_resize_inputs(H, W, P * m, image_min_pixels, image_max_pixels, variant)


def to_rgb_inputs(image: Any, alpha: Any) -> None:
    """image uint8 (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA; alpha 'drop' or 'white'."""
    require_ndim("image", image, (2, 3), "(height, width) or (height, width, 3 or 4)", "uint8 pixels")
    require_uint8("image", image)
    if alpha not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {list(ALPHA_POLICIES)}, got {alpha!r}")
    if len(image.shape) == 3 and image.shape[2] not in (3, 4):
        raise ValueError(f"image must have 3 (RGB) or 4 (RGBA) channels, got shape {shape_of(image)}")


def rescale_inputs(x: Any, factor: Any) -> None:
    """factor a finite number > 0; x finite real values."""
    positive_float("factor", factor)
    require_finite("x", bool(np.isfinite(np.asarray(x, dtype=np.float64)).all()))


def normalize_inputs(x: Any, mean: Any, std: Any) -> None:
    """mean and std one finite value per channel (the last axis of x), std > 0; x finite."""
    x = np.asarray(x, dtype=np.float64)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if mean.shape != std.shape or mean.ndim != 1 or x.ndim == 0 or x.shape[-1] != mean.shape[0]:
        raise ValueError(
            f"mean and std must hold one value per channel (last axis of x, shape {x.shape}), "
            f"got {mean.shape} and {std.shape}"
        )
    require_finite("x", bool(np.isfinite(x).all()))
    require_finite("mean", bool(np.isfinite(mean).all()))
    if not (np.isfinite(std).all() and (std > 0).all()):
        raise ValueError(f"std must be finite and > 0, got {std.tolist()}")


def temporal_frames_inputs(frames: Any, temporal_patch_size: Any) -> None:
    """temporal_patch_size a positive integer; frames an array with at least one frame along axis 0."""
    positive_int("temporal_patch_size", temporal_patch_size)
    if not hasattr(frames, "shape") or len(frames.shape) < 1 or frames.shape[0] == 0:
        raise ValueError("frames must be an array with at least one frame along axis 0")


# ---- index stages: grid_thw rules --------------------------------------------------------------------------------


def window_index_inputs(grid_thw: Any, window_size: Any, patch_size: Any, merge_size: Any) -> None:
    """window_size, patch_size, merge_size positive integers, a window covering at least one merged cell
    (window_geometry); grid_thw rows for merge_size (grid_rows)."""
    window_geometry(window_size, patch_size, merge_size)
    grid_rows(grid_thw, merge_size)


def cu_seqlens_inputs(grid_thw: Any, merge_size: Any) -> None:
    """grid_thw rows for merge_size (grid_rows)."""
    grid_rows(grid_thw, merge_size)


def num_image_tokens_inputs(grid_thw: Any, merge_size: Any) -> None:
    """grid_thw rows for merge_size (grid_rows)."""
    grid_rows(grid_thw, merge_size)


def rotary_position_ids_inputs(grid_thw: Any, merge_size: Any) -> None:
    """grid_thw rows for merge_size (grid_rows)."""
    grid_rows(grid_thw, merge_size)
