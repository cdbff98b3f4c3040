"""Configurations as the source document states them and as the released config.json files state them.

Released values: the config.json and preprocessor_config.json of Qwen/Qwen2.5-VL-{3B,7B,72B}-Instruct
(vision fields under "vision_config"); see SPEC-NOTES §5. Vision configs use HF's field names.
"""

from __future__ import annotations

MODELS = ("3B", "7B", "72B")

# The document's configuration table (seed document §2), row name -> value per model.
DOCUMENT_TABLE: dict[str, dict[str, object]] = {
    "vit_hidden_size": {"3B": 1280, "7B": 1280, "72B": 1280},
    "vit_layers": {"3B": 32, "7B": 32, "72B": 32},
    "vit_heads": {"3B": 16, "7B": 16, "72B": 16},
    "vit_intermediate_size": {"3B": 3456, "7B": 3456, "72B": 3456},
    "patch_size": {"3B": 14, "7B": 14, "72B": 14},
    "window_size": {"3B": 112, "7B": 112, "72B": 112},
    "fullatt_block_indexes": {"3B": [7, 15, 23, 31], "7B": [7, 15, 23, 31], "72B": [7, 15, 23, 31]},
    "merger_in_channels": {"3B": 1280, "7B": 1280, "72B": 1280},
    "merger_out_channels": {"3B": 2048, "7B": 3584, "72B": 8192},
    "llm_hidden_size": {"3B": 2048, "7B": 3584, "72B": 8192},
    "llm_layers": {"3B": 36, "7B": 28, "72B": 80},
    "llm_kv_heads": {"3B": 2, "7B": 4, "72B": 8},
    "llm_head_size": {"3B": 128, "7B": 128, "72B": 128},
    "llm_intermediate_size": {"3B": 4864, "7B": 18944, "72B": 29568},
    "embedding_tying": {"3B": True, "7B": False, "72B": False},
    "vocab_size": {"3B": 151646, "7B": 151646, "72B": 151646},
    "trained_tokens": {"3B": "4.1T", "7B": "4.1T", "72B": "4.1T"},
}

# The same rows as the released config.json files give them.
RELEASED_TABLE: dict[str, dict[str, object]] = {
    **{k: dict(v) for k, v in DOCUMENT_TABLE.items()},
    "vit_intermediate_size": {"3B": 3420, "7B": 3420, "72B": 3456},
    "llm_intermediate_size": {"3B": 11008, "7B": 18944, "72B": 29568},
    "vocab_size": {"3B": 151936, "7B": 152064, "72B": 152064},
    "trained_tokens": {"3B": None, "7B": None, "72B": None},  # not a config field
}

# Released-only facts that the document does not state.
RELEASED_EXTRA: dict[str, dict[str, object]] = {
    "llm_attention_heads": {"3B": 16, "7B": 28, "72B": 64},
    "llm_rope_theta": {"3B": 1000000.0, "7B": 1000000.0, "72B": 1000000.0},
    "mrope_section": {"3B": [16, 24, 24], "7B": [16, 24, 24], "72B": [16, 24, 24]},
    "vision_hidden_act": {"3B": "silu", "7B": "silu", "72B": "silu"},
    "tokens_per_second": {"3B": 2, "7B": 2, "72B": 2},
    "image_token_id": {"3B": 151655, "7B": 151655, "72B": 151655},
}

DISCREPANCIES: tuple[dict[str, str], ...] = (
    {
        "row": "vit_intermediate_size",
        "models": "3B, 7B",
        "explanation": "The document gives 3456 for all sizes; the 3B and 7B checkpoints' vision MLP weights are "
        "3420 wide (config.json vision_config.intermediate_size = 3420). Only 72B uses 3456.",
    },
    {
        "row": "llm_intermediate_size",
        "models": "3B",
        "explanation": "The document gives 4864, which is the Qwen2.5-0.5B value (a typo in the table); the 3B "
        "config.json states 11008.",
    },
    {
        "row": "vocab_size",
        "models": "3B, 7B, 72B",
        "explanation": "151646 cannot be an embedding size: the image pad token id is 151655. The checkpoints' "
        "embedding has 151936 rows (3B) and 152064 rows (7B, 72B).",
    },
    {
        "row": "trained_tokens",
        "models": "3B, 7B, 72B",
        "explanation": "A training fact, not a configuration field; no config.json states it.",
    },
    {
        "row": "patch layout",
        "models": "all",
        "explanation": "The document flattens a patch as 14*14*3 = 588 values, pixel-major with RGB interleaved "
        "(H, W, C). The model flattens (C, T, P, P) = 3*2*14*14 = 1176 values over two identical "
        "frames; for a still image the two are related by summing the temporal kernel slices and "
        "permuting the columns (C, P, P) -> (P, P, C).",
    },
)


def vision_config(model: str = "7B") -> dict:
    """The released vision_config of one model, with HF's field names."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
    return {
        "depth": 32,
        "hidden_size": 1280,
        "hidden_act": "silu",
        "intermediate_size": RELEASED_TABLE["vit_intermediate_size"][model],
        "num_heads": 16,
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "out_hidden_size": RELEASED_TABLE["merger_out_channels"][model],
        "tokens_per_second": 2,
    }


# preprocessor_config.json of the released checkpoints (and qwen-vl-utils' image defaults).
PREPROCESSOR = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": (0.48145466, 0.4578275, 0.40821073),
    "image_std": (0.26862954, 0.26130258, 0.27577711),
}
# The video budget of the released checkpoints as HF loads them: the Qwen2.5-VL repositories ship one
# preprocessor_config.json (no video_preprocessor_config.json), and transformers' video processor falls back to it
# (transformers 5.x video_processing_utils.BaseVideoProcessor.get_video_processor_dict tries
# video_preprocessor_config.json, then preprocessor_config.json; its min_pixels / max_pixels override the class's
# size), so videos get the same budget as images. Other defaults a user meets: HF's Qwen2VLVideoProcessor class
# (size shortest_edge 128*28*28, longest_edge 768*28*28) and qwen-vl-utils (VIDEO_MIN_TOKEN_NUM 128 and
# VIDEO_MAX_TOKEN_NUM 768 per frame, within a total budget).
VIDEO_PREPROCESSOR = {"min_pixels": PREPROCESSOR["min_pixels"], "max_pixels": PREPROCESSOR["max_pixels"]}
VIDEO_CLASS_DEFAULT_PIXELS = {"min_pixels": 128 * 28 * 28, "max_pixels": 768 * 28 * 28}

# HF's smart_resize function and image processor class defaults when no preprocessor config is loaded.
HF_DEFAULT_PIXELS = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 1280}

RMS_NORM_EPS = 1e-6
ROPE_THETA = 10000.0
IMAGE_PAD_ID = 151655
VISION_START_ID = 151652
VISION_END_ID = 151653

VISION_FIELDS = (
    "depth",
    "hidden_size",
    "intermediate_size",
    "num_heads",
    "in_channels",
    "patch_size",
    "spatial_merge_size",
    "temporal_patch_size",
    "window_size",
    "fullatt_block_indexes",
    "out_hidden_size",
)


def small_config(
    depth: int = 4,
    hidden_size: int = 64,
    num_heads: int = 4,
    intermediate_size: int = 96,
    out_hidden_size: int = 48,
    fullatt_block_indexes=(1, 3),
) -> dict:
    """A narrow, shallow config with the real geometry (patch 14, merge 2, window 112, temporal 2)."""
    cfg = vision_config("7B")
    cfg.update(
        depth=depth,
        hidden_size=hidden_size,
        num_heads=num_heads,
        intermediate_size=intermediate_size,
        out_hidden_size=out_hidden_size,
        fullatt_block_indexes=list(fullatt_block_indexes),
    )
    return cfg


def periodic_fullatt(depth: int, period: int) -> tuple[int, ...]:
    """The full-attention blocks of a periodic layout: every block i < depth with (i + 1) % period == 0 (the
    released configs: period 8 at depth 32 gives 7, 15, 23, 31; llama.cpp stores only the period, n_wa_pattern)."""
    return tuple(i for i in range(depth) if (i + 1) % period == 0)


def fullatt_period(fullatt_block_indexes, depth: int) -> int | None:
    """The period p with periodic_fullatt(depth, p) == the given blocks, or None when the layout is not periodic."""
    blocks = tuple(sorted(int(i) for i in fullatt_block_indexes))
    if not blocks:
        return None
    period = blocks[0] + 1
    return period if periodic_fullatt(depth, period) == blocks else None
