"""Where HF transformers, qwen-vl-utils (QVU) and vLLM differ (SPEC-NOTES §1 and §6), and what this spec chooses.

Each record names the protocol stage it concerns, what each upstream does (only the sources that behave
differently or notably are listed), the choice made here, and whether the difference changes results a
user can see ("observable") or is only a different formulation of the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES = ("HF", "QVU", "vLLM", "mlx-vlm")


@dataclass(frozen=True)
class Difference:
    id: str
    stage: str
    topic: str
    behaviours: tuple[tuple[str, str], ...]  # (source, what it does)
    choice: str
    observable: bool


DIFFERENCES: tuple[Difference, ...] = (
    Difference(
        "RESIZE-CLAMP",
        "smart_resize",
        "which step of smart_resize is clamped to at least one factor (28)",
        (
            (
                "HF",
                "transformers >= 4.53 and 5.x clamp the floor (max_pixels) branch, max(28, floor(..)*28); the "
                "first rounding is not clamped. 4.49 to 4.52 raised when a side was < 28 (ports/hf.toml).",
            ),
            (
                "QVU",
                "0.0.10 to 0.0.14 clamp the first rounding, max(28, round(..)*28); the floor branch is not "
                "clamped and returns 0 for thin images with a small max_pixels.",
            ),
        ),
        "Both are implemented: smart_resize(variant='hf') is the default, variant='qvu' reproduces qwen-vl-utils. "
        "Example (1, 200) with the released budgets: HF (28, 812), QVU (28, 196).",
        True,
    ),
    Difference(
        "RESIZE-BUDGET",
        "smart_resize",
        "default pixel budget",
        (
            (
                "HF",
                "smart_resize and the image processor class default to min_pixels 3136, max_pixels 1003520 "
                "(28*28*1280) when no preprocessor_config.json is loaded.",
            ),
            (
                "QVU",
                "min_pixels 3136, max_pixels 12845056 (28*28*16384), the same as the released "
                "preprocessor_config.json.",
            ),
        ),
        "The released preprocessor_config.json budgets (3136, 12845056) are the default everywhere here; "
        "1080x1920 gives 1092x1932 with them and 728x1316 with HF's class defaults.",
        True,
    ),
    Difference(
        "VIDEO-RESIZE",
        "preprocess",
        "how a video's frame size is chosen (capability video_rule)",
        (
            (
                "HF",
                "transformers 5.x Qwen2VLVideoProcessor resizes each frame like an image: smart_resize(height, width) "
                "within the video budget (video_rule 'per_frame'). A 3x28x28 video gives grid [2, 4, 4].",
            ),
            (
                "mlx-vlm",
                "its torch-free Qwen3VLVideoProcessor, used for Qwen2.5-VL, counts the frames in the budget "
                "(video_rule 'frames_budget'): round(frames/2)*2 * h * w is rescaled into [min_pixels, "
                "max_pixels] with beta from frames*height*width, sides below 28 first scaled up to 28. A "
                "3x28x28 video gives grid [2, 2, 2].",
            ),
        ),
        "Both are implemented (reference/pixels.py video_size, preprocess(video_rule=...)); 'per_frame' is the "
        "default and the rule of the reference and impl targets. A target declaring video_rule 'frames_budget' is "
        "checked against that rule and the run records the difference.",
        True,
    ),
    Difference(
        "RGBA",
        "preprocess",
        "images with an alpha channel",
        (
            ("HF", "converts to RGB by dropping alpha."),
            ("QVU", "composites RGBA over a white background using alpha, then converts to RGB."),
        ),
        "The spec's input is an RGB uint8 image; alpha handling happens before it and is the caller's choice. "
        "explain --image converts with Pillow's convert('RGB') (HF's behaviour).",
        True,
    ),
    Difference(
        "BICUBIC",
        "resize",
        "bicubic implementation",
        (
            (
                "HF",
                "the PIL path calls Pillow Image.resize(BICUBIC) on uint8; the torchvision path uses "
                "torchvision's antialiased bicubic on uint8 (about 0.3 % of values differ by rounding).",
            ),
            ("QVU", "Pillow Image.resize(BICUBIC) on uint8."),
        ),
        "Pillow's BICUBIC, bit for bit, is the reference (reference/resize.py).",
        True,
    ),
    Difference(
        "PATCH-EMBED-LINEAR",
        "patch_embed",
        "how the patch embedding is computed",
        (
            ("HF", "Conv3d(3, 1280, kernel = stride = (2, 14, 14), no bias) on x.view(-1, 3, 2, 14, 14)."),
            ("vLLM", "a Linear layer whose weight is the Conv3d weight reshaped to (1280, 1176)."),
        ),
        "Equal by definition (row order (C, T, P, P)); the reference states it as one matmul on the rows.",
        False,
    ),
    Difference(
        "RMSNORM-EPS",
        "rms_norm",
        "where the RMSNorm epsilon comes from",
        (
            ("HF", "the vision blocks and the merger use eps 1e-6."),
            ("vLLM", "reads eps from the text config's rms_norm_eps (1e-6 in the released configs)."),
        ),
        "eps = 1e-6; equal on the released checkpoints, different only for a config with another rms_norm_eps.",
        False,
    ),
    Difference(
        "FP16-CLAMP",
        "merger",
        "float16 overflow before the merger",
        (("HF", "no clamp."), ("vLLM", "clamps float16 values to the finite range before the merger.")),
        "The reference is float64 with no clamp; a low-precision target is judged by the tolerance model.",
        True,
    ),
    Difference(
        "INVERSE-PERMUTATION",
        "vision_tower",
        "how the window order is undone after the merger",
        (("HF", "argsort(window_index)."), ("vLLM", "a scatter: inverse[window_index] = arange.")),
        "Equal for a permutation; the reference uses the scatter. Using window_index itself is a bug that "
        "a 448x448 image hides (the permutation is its own inverse there) and 336x336 shows.",
        False,
    ),
    Difference(
        "WINDOW-CACHE",
        "window_index",
        "when the window index is computed",
        (
            ("HF", "recomputes window_index and cu_window_seqlens on every forward."),
            ("vLLM", "caches them per (t, h, w)."),
        ),
        "They depend only on grid_thw and the geometry, so caching changes no value.",
        False,
    ),
    Difference(
        "HF5-OUTPUTS",
        "vision_tower",
        "what the vision model returns",
        (
            (
                "HF",
                "transformers 5.x returns the merged tokens in raster order as pooler_output and the unmerged, "
                "window-ordered states as last_hidden_state; 4.x returns the merged tokens.",
            ),
            ("vLLM", "returns the merged tokens in raster order."),
        ),
        "vision_tower returns the merged tokens in raster order (HF 5.x pooler_output).",
        True,
    ),
)


@dataclass(frozen=True)
class EquivalentForm:
    """An output representation the spec allows besides the canonical one: checks compare the canonical form and
    record the representation (tests/checks.py record_difference)."""

    stage: str
    name: str
    description: str


EQUIVALENT_FORMS: tuple[EquivalentForm, ...] = (
    EquivalentForm(
        "window_index",
        "empty windows kept",
        "cu_window_seqlens with zero-length windows kept (repeated boundaries). HF's padding formula creates them "
        "when a side of the merged grid is divisible by 4 and removes them with unique_consecutive; mlx-vlm never "
        "removes them (its seen-set holds mx.array scalars, which hash by identity). Attention ignores empty "
        "segments, so the tower's output is the same; checks drop repeated boundaries before comparing.",
    ),
)


def equivalent_form(stage: str, name: str) -> EquivalentForm:
    """The equivalent form `name` of `stage`."""
    for f in EQUIVALENT_FORMS:
        if f.stage == stage and f.name == name:
            return f
    raise ValueError(
        f"equivalent form must be one of {[(f.stage, f.name) for f in EQUIVALENT_FORMS]}, got {(stage, name)!r}"
    )


def by_id(difference_id: str) -> Difference:
    """The recorded difference with this id (SPEC-NOTES §6)."""
    for d in DIFFERENCES:
        if d.id == difference_id:
            return d
    raise ValueError(f"difference id must be one of {[d.id for d in DIFFERENCES]}, got {difference_id!r}")
