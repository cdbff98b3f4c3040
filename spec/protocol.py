"""The target protocol: one object whose methods are the pipeline stages.

A target is any object with some of the methods below. The suite checks every method a target has
against ``reference.TARGET`` and reports the others as "not covered" (never as passed). Arrays go in
as NumPy (float64 for floats, int64 for indices); a target may return NumPy arrays or torch tensors.
Weights are dicts keyed by HF state-dict names; ``params`` arguments are the sub-dict of one module
with its prefix removed (see ``subdict``). Configs use HF's vision-config field names.

Optional attributes: ``name`` (str), ``dtype`` (the compute dtype's name, default "float64"),
``device`` (default "cpu"), ``with_options(device=..., dtype=...)`` returning a configured copy, and
``capabilities`` (a dict, see ``Capabilities``: the rotary form it takes, the media, variants and geometries it
handles, whether it validates its inputs).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One protocol stage (docs/ARCHITECTURE.md, "The protocol: one record per stage").

    Records name the layers above spec by dotted path or by key only (spec imports nothing above it):
    reference: "vitspec.reference.<module>:<function>"; tolerance: a row of vitspec.tests.tolerance.TABLE (None:
    compared exactly); bad_inputs: a key of vitspec.tests.bad_inputs.KINDS (None: no error-input table); mutants:
    names of the catalogue mutants (vitspec/mutants) that plant a bug in this stage; capabilities: the capability
    keys (CAPABILITY_KEYS) that restrict its checks; optional: a stage most ports do not have as a function
    (listed apart in the report); forms: names of the equivalent output forms the spec allows
    (vitspec.spec.differences.EQUIVALENT_FORMS).
    """

    name: str
    module: str  # the spec stage: reference/<module>.py, impl/<module>.py, tests/test_<module>.py
    signature: str
    rule: str
    reference: str = ""
    tolerance: str | None = None
    bad_inputs: str | None = None
    mutants: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    optional: bool = False
    forms: tuple[str, ...] = ()

    def reference_function(self):
        """The reference function this stage is checked against (imported on first use)."""
        module, _, attr = self.reference.partition(":")
        return getattr(importlib.import_module(module), attr)


_SMART_RESIZE_MUTANTS = (
    "smart_resize_round_half_up",
    "smart_resize_ceil_branch_floored",
    "smart_resize_ratio_200_refused",
    "smart_resize_refuses_small_sides",
    "smart_resize_height_width_swapped",
)
_RESIZE_MUTANTS = ("resize_horizontal_pass_first", "resize_bicubic_a_075", "resize_no_antialias")
_PATCHIFY_MUTANTS = ("patchify_raster_rows", "patchify_time_before_channel", "patchify_block_column_major")
_POSITION_MUTANTS = (
    "rope_positions_repeated_over_frames",
    "rope_positions_row_col_swapped",
    "rope_rows_continue_over_images",
)
_ANGLE_MUTANTS = (
    "rope_inv_freq_full_head_dim",
    "rope_inv_freq_bfloat16",
    "rope_positions_bfloat16",
    "rope_angles_in_model_dtype",
)
_WINDOW_MUTANTS = (
    "window_side_5_cells",
    "window_per_row_floored",
    "window_per_row_from_rows",
    "window_cells_column_major",
    "window_offset_ignores_frames",
    "window_sort_key_bfloat16",
)
_SDPA_MUTANTS = ("attention_missing_scale", "attention_causal", "attention_scatter_is_gather")
_TOWER_MUTANTS = (
    "tower_norm_eps_1e5",
    "tower_windows_unmasked",
    "tower_full_window_swapped",
    "tower_full_blocks_never_selected",
    "tower_full_segments_per_image",
    "tower_full_segments_span_batch",
    "tower_inverse_is_window_index",
    "tower_rope_not_permuted",
)
_GEOMETRY = ("temporal_patch_sizes", "merge_sizes")
_ROTARY = "rotary: angles (N, head_dim/2), or (cos, sin) each (N, head_dim), as the target declares"

STAGES: tuple[Stage, ...] = (
    Stage(
        "smart_resize",
        "resize",
        "smart_resize(height, width, factor=28, min_pixels=3136, max_pixels=12845056, variant='hf') -> (h, w)",
        "round to multiples of factor (ties to even), rescale into [min_pixels, max_pixels], ratio <= 200",
        reference="vitspec.reference.resize:smart_resize",
        bad_inputs="smart_resize",
        mutants=(
            "smart_resize_round_half_up",
            "smart_resize_floor_unclamped",
            "smart_resize_beta_from_rounded",
            "smart_resize_ceil_branch_floored",
            "smart_resize_ratio_200_refused",
            "smart_resize_refuses_small_sides",
            "smart_resize_height_width_swapped",
        ),
        capabilities=("smart_resize_variants",),
    ),
    Stage(
        "resize",
        "resize",
        "resize(image uint8 (H, W, 3), height, width) -> uint8 (height, width, 3)",
        "bicubic resampling bit-identical to Pillow Image.resize(BICUBIC)",
        reference="vitspec.reference.resize:resize",
        bad_inputs="resize",
        mutants=_RESIZE_MUTANTS,
    ),
    Stage(
        "preprocess",
        "pixels",
        "preprocess(media: list of uint8 (H, W, 3) images or (F, H, W, 3) videos, image_min_pixels=3136, "
        "image_max_pixels=12845056, video_min_pixels=3136, video_max_pixels=12845056) "
        "-> (pixel_values float (N, C*T*P*P), grid_thw int64 (n, 3))",
        "smart_resize (images: image budget; videos: video budget, by the target's video_rule), bicubic, "
        "rescale 1/255, CLIP normalize, temporal pairing, flatten",
        reference="vitspec.reference.pixels:preprocess",
        bad_inputs="preprocess",
        mutants=_SMART_RESIZE_MUTANTS
        + _RESIZE_MUTANTS
        + (
            "preprocess_resized_transposed",
            "preprocess_batch_resized_to_first",
            "preprocess_video_pads_first_frame",
            "preprocess_video_pads_even_lengths",
            "preprocess_rescale_256",
            "preprocess_channels_reversed",
        )
        + _PATCHIFY_MUTANTS,
        capabilities=("media", "video_rule"),
    ),
    Stage(
        "patchify",
        "patchify",
        "patchify(frames float (F, C, H, W), patch_size=14, temporal_patch_size=2, merge_size=2) "
        "-> (pixel_values (N, C*T*P*P), grid_thw int64 (3,))",
        "rows in merge-block order, columns in (C, T, P, P) order",
        reference="vitspec.reference.patchify:patchify",
        bad_inputs="patchify",
        mutants=_PATCHIFY_MUTANTS,
        capabilities=_GEOMETRY,
    ),
    Stage(
        "patch_embed",
        "embed",
        "patch_embed(pixel_values (N, C*T*P*P), weight (D, C, T, P, P)) -> (N, D)",
        "Conv3d with kernel = stride, no bias",
        reference="vitspec.reference.embed:patch_embed",
        tolerance="patch_embed",
        bad_inputs="patch_embed",
        mutants=("patch_embed_one_temporal_slice",),
        capabilities=("temporal_patch_sizes",),
    ),
    Stage(
        "rotary_position_ids",
        "rope",
        "rotary_position_ids(grid_thw (n, 3), merge_size=2) -> int64 (N, 2) of (row, col)",
        "patch coordinates in merge-block order, tiled over frames",
        reference="vitspec.reference.rope:rotary_position_ids",
        bad_inputs="rotary_position_ids",
        mutants=_POSITION_MUTANTS,
        capabilities=("merge_sizes",),
    ),
    Stage(
        "rotary_angles",
        "rope",
        "rotary_angles(position_ids (N, 2), head_dim, theta=10000.0) -> (N, head_dim/2)",
        "angles [row*inv_freq, col*inv_freq] (the rotary_pos_emb table ports carry)",
        reference="vitspec.reference.rope:rotary_angles",
        tolerance="rotary_angles",
        bad_inputs="rotary_angles",
        mutants=_ANGLE_MUTANTS,
    ),
    Stage(
        "rotary_cos_sin",
        "rope",
        "rotary_cos_sin(position_ids (N, 2), head_dim, theta=10000.0) -> (cos, sin) each (N, head_dim)",
        "angles [row*inv_freq, col*inv_freq] duplicated to head_dim",
        reference="vitspec.reference.rope:rotary_cos_sin",
        tolerance="rotary_cos_sin",
        bad_inputs="rotary_cos_sin",
        mutants=("rope_cos_sin_repeat_interleaved",) + _ANGLE_MUTANTS,
    ),
    Stage(
        "apply_rotary",
        "rope",
        "apply_rotary(x (N, heads, head_dim), rotary) -> (N, heads, head_dim)",
        "x*cos + rotate_half(x)*sin; " + _ROTARY,
        reference="vitspec.reference.rope:apply_rotary",
        tolerance="apply_rotary",
        bad_inputs="apply_rotary",
        mutants=("rope_rotation_reversed",),
        capabilities=("rotary",),
    ),
    Stage(
        "window_index",
        "windows",
        "window_index(grid_thw, window_size=112, patch_size=14, merge_size=2) -> (window_index int64 (N/4,), "
        "cu_window_seqlens int64)",
        "4x4-cell windows tiled from the top-left per image and frame, zero-length windows removed",
        reference="vitspec.reference.windows:window_index",
        bad_inputs="window_index",
        mutants=_WINDOW_MUTANTS,
        capabilities=("merge_sizes",),
        forms=("empty windows kept",),
    ),
    Stage(
        "cu_seqlens",
        "windows",
        "cu_seqlens(grid_thw) -> int64 (segments + 1,)",
        "one full-attention segment per image per frame",
        reference="vitspec.reference.windows:cu_seqlens",
        bad_inputs="cu_seqlens",
        mutants=("cu_seqlens_per_image", "cu_seqlens_whole_batch"),
    ),
    Stage(
        "attention",
        "attention",
        "attention(q, k, v each (N, heads, head_dim), cu_seqlens) -> (N, heads, head_dim)",
        "softmax(q k^T / sqrt(head_dim)) v inside each segment, never across",
        reference="vitspec.reference.attention:attention",
        tolerance="attention",
        bad_inputs="attention",
        mutants=_SDPA_MUTANTS + ("attention_ignores_segments",),
        optional=True,
    ),
    Stage(
        "attention_module",
        "attention",
        "attention_module(x (N, D), params (blocks.i.attn sub-dict: qkv.weight, qkv.bias, proj.weight, proj.bias), "
        "cu_seqlens, rotary, num_heads) -> (N, D)",
        "proj(attention(rope(q), rope(k), v)) with qkv = Linear(D, 3D) laid out [q | k | v]; " + _ROTARY,
        reference="vitspec.reference.attention:attention_module",
        tolerance="attention_module",
        bad_inputs="attention_module",
        mutants=("rope_rotation_reversed",) + _SDPA_MUTANTS,
        capabilities=("rotary",),
    ),
    Stage(
        "rms_norm",
        "block",
        "rms_norm(x (N, D), weight (D,), eps=1e-6) -> (N, D)",
        "x / sqrt(mean(x^2) + eps) * weight, statistics in float32 or wider",
        reference="vitspec.reference.block:rms_norm",
        tolerance="rms_norm",
        bad_inputs="rms_norm",
        mutants=(
            "rms_norm_float16_statistics",
            "rms_norm_bfloat16_statistics",
        ),
    ),
    Stage(
        "mlp",
        "block",
        "mlp(x (N, D), params{gate_proj,up_proj,down_proj}.{weight,bias}) -> (N, D)",
        "down(silu(gate(x)) * up(x))",
        reference="vitspec.reference.block:mlp",
        tolerance="mlp",
        bad_inputs="mlp",
        mutants=("mlp_gate_up_swapped",),
    ),
    Stage(
        "vision_block",
        "block",
        "vision_block(x (N, D), params (blocks.i sub-dict), cu_seqlens, rotary, num_heads, eps=1e-6) -> (N, D)",
        "x + attn(norm1(x)); x + mlp(norm2(x)); " + _ROTARY,
        reference="vitspec.reference.block:vision_block",
        tolerance="vision_block",
        bad_inputs="vision_block",
        mutants=("rope_pairs_adjacent",)
        + _SDPA_MUTANTS
        + ("rms_norm_float16_statistics", "rms_norm_bfloat16_statistics", "mlp_gate_up_swapped"),
        capabilities=("rotary",),
    ),
    Stage(
        "merger",
        "merger",
        "merger(x (N, D), params (merger sub-dict), merge_size=2, eps=1e-6) -> (N/4, out_hidden_size)",
        "RMSNorm, 4 consecutive rows concatenated, Linear, erf GELU, Linear",
        reference="vitspec.reference.merger:merger",
        tolerance="merger",
        bad_inputs="merger",
        mutants=(
            "rms_norm_float16_statistics",
            "rms_norm_bfloat16_statistics",
            "merger_tanh_gelu",
            "merger_block_column_major",
        ),
        capabilities=("merge_sizes",),
    ),
    Stage(
        "vision_tower",
        "tower",
        "vision_tower(pixel_values (N, C*T*P*P), grid_thw (n, 3), weights, config) -> (N/4, out_hidden_size)",
        "embed, window-permute, blocks (full at fullatt_block_indexes), merger, back to raster order",
        reference="vitspec.reference.tower:vision_tower",
        tolerance="vision_tower",
        bad_inputs="vision_tower",
        mutants=("patch_embed_one_temporal_slice", "rope_pairs_adjacent")
        + _POSITION_MUTANTS
        + _ANGLE_MUTANTS
        + tuple(m for m in _WINDOW_MUTANTS if m != "window_cells_column_major")
        + _SDPA_MUTANTS
        + (
            "rms_norm_float16_statistics",
            "rms_norm_bfloat16_statistics",
            "mlp_gate_up_swapped",
            "merger_tanh_gelu",
            "merger_block_column_major",
        )
        + _TOWER_MUTANTS
        + ("tower_rope_angles_bfloat16",),
        capabilities=_GEOMETRY + ("fullatt_layout",),
    ),
    Stage(
        "num_image_tokens",
        "tokens",
        "num_image_tokens(grid_thw, merge_size=2) -> int64 (n,)",
        "t*h*w / merge_size**2 per image",
        reference="vitspec.reference.tokens:num_image_tokens",
        bad_inputs="num_image_tokens",
        mutants=("tokens_ignore_frames",),
        capabilities=("merge_sizes",),
    ),
)

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16", "float64")


ROTARY_FORMS: tuple[str, ...] = ("angles", "cos_sin")
SMART_RESIZE_VARIANTS: tuple[str, ...] = ("hf", "qvu")
MEDIA: tuple[str, ...] = ("image", "video")
VIDEO_RULES: tuple[str, ...] = ("per_frame", "frames_budget")
FULLATT_LAYOUTS: tuple[str, ...] = ("any", "periodic")
ROTARY_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if "rotary" in s.capabilities)


@dataclass(frozen=True)
class Capabilities:
    """What a target declares (its ``capabilities`` dict; a missing key takes the default here).

    rotary: the form of ``rotary`` its apply_rotary, attention_module and vision_block take: "angles" (N, head_dim/2)
    or "cos_sin", a pair (cos, sin) each (N, head_dim). smart_resize_variants, media: the variants and media it
    handles (checks of others are NOT COVERED). video_rule: how its preprocess sizes videos, "per_frame" (HF 5.x's
    Qwen2-VL video processor: each frame like an image) or "frames_budget" (mlx-vlm: frames x pixels counted in the
    budget). temporal_patch_sizes, merge_sizes: the geometries it supports (None: any). validates_inputs: whether
    it rejects bad input as the protocol prescribes (the bad-input checks count only then). fullatt_layout: the
    full-attention block sets its vision_tower runs, "any" or "periodic" (exactly the blocks i with
    (i + 1) % p == 0 for one period p: llama.cpp's n_wa_pattern; spec/configs.py periodic_fullatt); tower checks
    then draw only such configs. inline: {stage: reason} for stages it computes inline.
    """

    rotary: str = "cos_sin"
    smart_resize_variants: tuple[str, ...] = SMART_RESIZE_VARIANTS
    media: tuple[str, ...] = MEDIA
    video_rule: str = "per_frame"
    temporal_patch_sizes: tuple[int, ...] | None = None
    merge_sizes: tuple[int, ...] | None = None
    validates_inputs: bool = False
    fullatt_layout: str = "any"
    inline: tuple[tuple[str, str], ...] = ()  # (stage, reason) pairs

    def inline_reason(self, stage_name: str) -> str | None:
        """Why the target has no method for this stage, when it says so."""
        return dict(self.inline).get(stage_name)


CAPABILITY_KEYS: tuple[str, ...] = tuple(Capabilities.__dataclass_fields__)
CAPABILITY_VALUES = {
    "rotary": f"one of {list(ROTARY_FORMS)}",
    "smart_resize_variants": f"a non-empty subset of {list(SMART_RESIZE_VARIANTS)}",
    "media": f"a non-empty subset of {list(MEDIA)}",
    "video_rule": f"one of {list(VIDEO_RULES)}",
    "temporal_patch_sizes": "None or a non-empty tuple of positive integers",
    "merge_sizes": "None or a non-empty tuple of positive integers",
    "validates_inputs": "True or False",
    "fullatt_layout": f"one of {list(FULLATT_LAYOUTS)}",
    "inline": f"a dict {{stage: reason}} with stage names from {list(STAGE_NAMES)}",
}


def _subset(key: str, value, allowed: tuple) -> tuple:
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple, set, frozenset))
        or not value
        or any(v not in allowed for v in value)
    ):
        raise ValueError(f"capabilities[{key!r}] must be {CAPABILITY_VALUES[key]}, got {value!r}")
    return tuple(v for v in allowed if v in value)


def _sizes(key: str, value):
    if value is None:
        return None
    ok = (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    )
    if not ok:
        raise ValueError(f"capabilities[{key!r}] must be {CAPABILITY_VALUES[key]}, got {value!r}")
    return tuple(value)


def capabilities(target) -> Capabilities:
    """The target's declared capabilities, checked: an unknown key or value is a ValueError naming the key and the
    allowed values (a usage error, never a silent default)."""
    declared = getattr(target, "capabilities", None)
    if declared is None:
        return Capabilities()
    if isinstance(declared, Capabilities):
        return declared
    if not isinstance(declared, dict):
        raise ValueError(
            f"target capabilities must be a dict with keys from {list(CAPABILITY_KEYS)}, got {type(declared).__name__}"
        )
    unknown = [k for k in declared if k not in CAPABILITY_KEYS]
    if unknown:
        raise ValueError(f"target capabilities has unknown keys {unknown}; allowed keys: {list(CAPABILITY_KEYS)}")
    out = {}
    for key, value in declared.items():
        if key in ("rotary", "video_rule", "fullatt_layout"):
            allowed = {"rotary": ROTARY_FORMS, "video_rule": VIDEO_RULES, "fullatt_layout": FULLATT_LAYOUTS}[key]
            if not isinstance(value, str) or value not in allowed:
                raise ValueError(f"capabilities[{key!r}] must be {CAPABILITY_VALUES[key]}, got {value!r}")
            out[key] = value
        elif key in ("smart_resize_variants", "media"):
            out[key] = _subset(key, value, SMART_RESIZE_VARIANTS if key == "smart_resize_variants" else MEDIA)
        elif key in ("temporal_patch_sizes", "merge_sizes"):
            out[key] = _sizes(key, value)
        elif key == "validates_inputs":
            if not isinstance(value, bool):
                raise ValueError(f"capabilities[{key!r}] must be {CAPABILITY_VALUES[key]}, got {value!r}")
            out[key] = value
        else:  # inline
            if not isinstance(value, dict) or any(
                k not in STAGE_NAMES or not isinstance(r, str) for k, r in value.items()
            ):
                raise ValueError(f"capabilities[{key!r}] must be {CAPABILITY_VALUES[key]}, got {value!r}")
            out[key] = tuple(sorted(value.items()))
    return Capabilities(**out)


def stage(name: str) -> Stage:
    """The Stage record of one stage name."""
    for s in STAGES:
        if s.name == name:
            return s
    raise ValueError(f"stage must be one of {list(STAGE_NAMES)}, got {name!r}")


def subdict(weights: dict, prefix: str) -> dict:
    """The entries of a state dict under ``prefix.`` with the prefix removed."""
    head = prefix.rstrip(".") + "."
    return {k[len(head) :]: v for k, v in weights.items() if k.startswith(head)}


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
    if (device or "cpu") != getattr(target, "device", "cpu") or (dtype or "float64") != getattr(
        target, "dtype", "float64"
    ):
        raise ValueError(f"target {spec!r} has no with_options(device=..., dtype=...) for --device/--dtype")
    return target
