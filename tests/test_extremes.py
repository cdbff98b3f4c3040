"""Extremes: sides of 1 to 27 px, aspect ratio exactly 200, the largest image the released budget allows
(3584 x 3584 = 12845056 px -> grid 1 x 256 x 256), and a full-width (1280 wide, 16 heads, MLP 3420) window block
on the largest grid, whose peak memory must grow linearly with the number of patches (no N x N buffer).

The heavy checks run with VITSPEC_SLOW=1; the default run keeps light versions of each. Peak memory is measured in
a fresh process (``python -m vitspec.tests.test_extremes SPEC SIDE ...``): the resident-set high-water mark is reset
(/proc/self/clear_refs) after the inputs exist, so the figure is what the block call itself adds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vitspec import reference
from vitspec.reference import rope as ref_rope
from vitspec.reference.patchify import patch_row_origin
from vitspec.reference.pixels import normalize, preprocess as reference_preprocess, rescale
from vitspec.reference.windows import permute_groups
from vitspec.spec.configs import PREPROCESSOR
from vitspec.tests import subproc, tolerance
from vitspec.tests.capability import declared, require_media, require_variant
from vitspec.tests.checks import RUN, assert_index_equal, canonical_windows, exercised, fail, target_dtype, to_numpy
from vitspec.tests.rotary_inputs import as_form, rotary_for, rows as rotary_rows

SLOW = os.environ.get("VITSPEC_SLOW") == "1"
slow = pytest.mark.skipif(not SLOW, reason="heavy (minutes, GBs of memory): set VITSPEC_SLOW=1 to run")
LARGEST = 3584  # 3584 * 3584 = 12845056 = max_pixels of the released preprocessor config
FULL_WIDTH = (1280, 16, 3420)  # hidden, heads, intermediate (3B / 7B)
GROWTH = 4.5  # extra peak memory at 4N patches may be at most 4.5 x the extra at N


def pixel_bound(ref, dtype: str) -> np.ndarray:
    """Normalized pixels are one affine map of uint8 values: a few roundings in the target's dtype."""
    return 4 * tolerance.EPS[dtype] * np.maximum(1.0, np.abs(ref))


def assert_same_preprocessing(target, images, what: str) -> None:
    """Target and reference preprocess `images` to the same grid and the same pixel_values within pixel_bound."""
    if any(np.asarray(m).ndim == 4 for m in images):
        require_media(target, "video")
    ref_pixels, ref_grid = reference_preprocess(images, video_rule=declared(target).video_rule)  # the declared rule
    got_pixels, got_grid = target.preprocess(images)
    assert_index_equal("preprocess", got_grid, ref_grid, images=what)
    got, dtype = to_numpy(got_pixels), target_dtype(target)
    if got.shape != ref_pixels.shape or not np.all(np.abs(got - ref_pixels) <= pixel_bound(ref_pixels, dtype)):
        fail(
            "preprocess",
            "pixel_values differ from the reference",
            {"images": what},
            [
                f"shape {got.shape} vs {ref_pixels.shape}",
                f"max |diff| {np.max(np.abs(got - ref_pixels)):.3g}" if got.shape == ref_pixels.shape else "",
            ],
        )


@pytest.mark.stage("smart_resize")
@pytest.mark.parametrize("variant", ["hf", "qvu"])
@pytest.mark.parametrize("max_pixels", [12845056, 1003520, 3136])
def test_smart_resize_sides_1_to_27(target, variant, max_pixels):
    """Every (h, w) with sides below the factor: the same result as the reference; HF never returns a zero side."""
    require_variant(target, variant)
    for h in range(1, 28):
        for w in range(1, 28):
            got, ref = (
                tuple(target.smart_resize(h, w, 28, 3136, max_pixels, variant)),
                reference.TARGET.smart_resize(h, w, 28, 3136, max_pixels, variant),
            )
            assert got == ref, f"smart_resize({h}, {w}, max_pixels={max_pixels}, variant={variant!r}): {got} != {ref}"
            assert variant == "qvu" or min(got) >= 28, (h, w, got)


@pytest.mark.stage("preprocess")
@pytest.mark.parametrize("family", ["s x s", "1 x s", "s x 1", "s x 27", "video 3 x s x (28 - s)"])
def test_preprocess_sides_1_to_27(target, family):
    rng = np.random.default_rng(len(family))
    shape = {
        "s x s": lambda s: (s, s),
        "1 x s": lambda s: (1, s),
        "s x 1": lambda s: (s, 1),
        "s x 27": lambda s: (s, 27),
        "video 3 x s x (28 - s)": lambda s: (3, s, 28 - s),
    }[family]
    images = [rng.integers(0, 256, shape(s) + (3,), dtype=np.uint8) for s in range(1, 28)]
    assert_same_preprocessing(target, images, f"27 images {family}, s = 1..27")


@pytest.mark.stage("preprocess")
def test_aspect_ratio_exactly_200(target):
    sizes = [(1, 200), (200, 1), (3, 600), (28, 5600), (5600, 28)]
    for h, w in sizes:
        assert tuple(target.smart_resize(h, w)) == reference.TARGET.smart_resize(h, w), (h, w)
    rng = np.random.default_rng(200)
    assert_same_preprocessing(
        target, [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes], f"aspect ratio 200: {sizes}"
    )


@pytest.mark.stage("smart_resize", "rotary_position_ids", "window_index", "cu_seqlens", "num_image_tokens")
def test_largest_budget_metadata(stage):
    """The largest image: resize stays at 3584 x 3584, and every index stage of grid 1 x 256 x 256 (with a
    two-frame video of it and a small image beside it) equals the reference exactly. Each stage the target has is
    checked on its own; a stage it lacks is not (the report counts it as not covered)."""
    assert LARGEST * LARGEST == PREPROCESSOR["max_pixels"]
    if stage.provides("smart_resize"):
        for side in (LARGEST, LARGEST + 1, 3590, 3600):
            got, ref = tuple(stage("smart_resize")(side, side)), reference.TARGET.smart_resize(side, side)
            assert ref == (LARGEST,) * 2, (side, ref)
            if got != ref:
                fail("smart_resize", f"{got} differs from the reference's {ref}", {"height": side, "width": side})
    names = [n for n in ("rotary_position_ids", "window_index", "cu_seqlens", "num_image_tokens") if stage.provides(n)]
    for grid in ([[1, 256, 256]], [[2, 256, 256], [1, 4, 6]]):
        grid = np.array(grid)
        for name in names:
            got, ref = stage(name)(grid), getattr(reference.TARGET, name)(grid)
            if name == "window_index":  # empty windows kept: an equivalent form, recorded (EQUIVALENT_FORMS)
                got = (got[0], canonical_windows(grid.tolist(), got[1]))
            for g, r in zip(got if isinstance(got, tuple) else [got], ref if isinstance(ref, tuple) else [ref]):
                assert_index_equal(name, g, r, grid_thw=grid.tolist())


def expected_rows(image: np.ndarray, rows) -> np.ndarray:
    """pixel_values rows of a still image already at its resized size, built from the spec (§1.2, §1.3)."""
    P, T = PREPROCESSOR["patch_size"], PREPROCESSOR["temporal_patch_size"]
    out = []
    for r in rows:
        _, y, x = patch_row_origin(int(r), image.shape[0] // P, image.shape[1] // P)
        patch = normalize(rescale(image[y * P : (y + 1) * P, x * P : (x + 1) * P]))  # (P, P, C)
        out.append(np.repeat(patch.transpose(2, 0, 1)[:, None], T, axis=1).reshape(-1))  # (C, T, P, P)
    return np.array(out)


@pytest.mark.stage("preprocess")
def test_largest_image_preprocess_light(target):
    """3584 x 3584 (no resize needed): grid 1 x 256 x 256, 65536 rows; 256 sampled rows equal the spec's."""
    image = np.random.default_rng(3584).integers(0, 256, (LARGEST, LARGEST, 3), dtype=np.uint8)
    start = time.perf_counter()
    pixels, grid = target.preprocess([image])
    seconds = time.perf_counter() - start
    assert to_numpy(grid).tolist() == [[1, 256, 256]] and tuple(pixels.shape) == (65536, 1176)
    rows = np.random.default_rng(0).choice(65536, 256, replace=False)
    got, ref = to_numpy(pixels[rows]), expected_rows(image, rows)
    assert np.all(np.abs(got - ref) <= pixel_bound(ref, target_dtype(target))), np.max(np.abs(got - ref))
    print(f"\ntarget preprocess of {LARGEST}x{LARGEST}: {seconds:.2f} s")


@slow
@pytest.mark.stage("preprocess")
def test_largest_image_preprocess_full(target):
    """3590 x 3590 -> resized to 3584 x 3584: every value against the float64 reference (about 15 s)."""
    image = np.random.default_rng(3590).integers(0, 256, (3590, 3590, 3), dtype=np.uint8)
    assert_same_preprocessing(target, [image], "3590 x 3590")


# --- peak memory of a full-width window block ------------------------------------------------------------------


def block_inputs(side: int, hidden: int, heads: int, inter: int, seed: int = 0):
    """x (window order), params of one block, cu_window_seqlens and the reference's rotary angles (window order) for
    grid 1 x side x side (float64)."""
    rng = np.random.default_rng(seed)
    grid = np.array([[1, side, side]])
    index, cu = reference.TARGET.window_index(grid)
    pos = permute_groups(reference.TARGET.rotary_position_ids(grid), index)
    angles = ref_rope.rotary_angles(pos, hidden // heads)
    shapes = {
        "norm1.weight": (hidden,),
        "norm2.weight": (hidden,),
        "attn.qkv.weight": (3 * hidden, hidden),
        "attn.qkv.bias": (3 * hidden,),
        "attn.proj.weight": (hidden, hidden),
        "attn.proj.bias": (hidden,),
        "mlp.gate_proj.weight": (inter, hidden),
        "mlp.gate_proj.bias": (inter,),
        "mlp.up_proj.weight": (inter, hidden),
        "mlp.up_proj.bias": (inter,),
        "mlp.down_proj.weight": (hidden, inter),
        "mlp.down_proj.bias": (hidden,),
    }
    params = {
        k: (1.0 if k.startswith("norm") else 0.0) + rng.standard_normal(s) / np.sqrt(s[-1] if len(s) > 1 else 50)
        for k, s in shapes.items()
    }
    return rng.standard_normal((side * side, hidden)), params, cu, angles


def dense_mask_block(x, params, cu, angles, heads):
    """Planted memory bug: the same block with attention over all tokens under an N x N segment mask."""
    import torch
    import torch.nn.functional as F

    cos, sin = as_form(angles, "cos_sin")
    t = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in params.items()}
    x, cos, sin = (torch.as_tensor(a, dtype=torch.float32) for a in (x, cos, sin))
    N, D = x.shape
    q, k, v = (
        F.linear(F.rms_norm(x, (D,), t["norm1.weight"], 1e-6), t["attn.qkv.weight"], t["attn.qkv.bias"])
        .view(N, 3, heads, D // heads)
        .unbind(1)
    )
    half = D // heads // 2
    rope = lambda a: a * cos[:, None] + torch.cat([-a[..., half:], a[..., :half]], -1) * sin[:, None]  # noqa: E731
    segment = torch.repeat_interleave(torch.arange(len(cu) - 1), torch.as_tensor(np.diff(cu)))
    mask = segment[:, None] == segment[None, :]
    attn = F.scaled_dot_product_attention(*(a.transpose(0, 1) for a in (rope(q), rope(k), v)), attn_mask=mask)
    x = x + F.linear(attn.transpose(0, 1).reshape(N, D), t["attn.proj.weight"], t["attn.proj.bias"])
    h = F.rms_norm(x, (D,), t["norm2.weight"], 1e-6)
    gate, up = (F.linear(h, t[f"mlp.{n}.weight"], t[f"mlp.{n}.bias"]) for n in ("gate_proj", "up_proj"))
    return x + F.linear(F.silu(gate) * up, t["mlp.down_proj.weight"], t["mlp.down_proj.bias"])


def _rss() -> dict:
    return {
        k: int(v.split()[0]) * 1024
        for k, v in (line.split(":", 1) for line in open("/proc/self/status"))
        if k in ("VmRSS", "VmHWM")
    }


def measure(
    spec: str, side: int, hidden: int, heads: int, inter: int, dtype: str | None = None, check: int = 3
) -> dict:
    """Run one window block in this process; peak memory it adds, seconds, and the normalized error of `check`
    windows (first, middle, last) against the float64 reference block on those windows alone."""
    from vitspec.spec.protocol import load_target

    x, params, cu, angles = block_inputs(side, hidden, heads, inter)
    if spec == "dense":
        block, form = dense_mask_block, (lambda a: a)
    else:
        target = load_target(spec)
        target = target.with_options(dtype=dtype) if dtype else target
        block, form = target.vision_block, (lambda a: rotary_for(target, a))
    wx, wparams, wcu, wangles = block_inputs(8, hidden, heads, inter, seed=1)
    block(
        wx, wparams, wcu, form(wangles), heads
    )  # library pages and thread pools are loaded on first use: keep them out of the figure
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        method = "VmHWM after clear_refs"
    except OSError:
        method = "VmHWM since start (clear_refs not writable)"
    base = _rss()["VmRSS"]
    start = time.perf_counter()
    out = to_numpy(block(x, params, cu, form(angles), heads))
    seconds = time.perf_counter() - start
    peak = _rss()["VmHWM"]
    worst, K = 0.0, max(hidden, inter, int(np.max(np.diff(cu))))
    ref_rotary = rotary_for(reference.TARGET, angles)
    for w in sorted({0, (len(cu) - 1) // 2, len(cu) - 2})[:check]:
        a, b = int(cu[w]), int(cu[w + 1])
        ref = reference.TARGET.vision_block(x[a:b], params, np.array([0, b - a]), rotary_rows(ref_rotary, a, b), heads)
        worst = max(worst, float(tolerance.normalized_error(out[a:b], ref, K, tolerance.row_rms(ref), "float32").max()))
    return {
        "patches": side * side,
        "extra_bytes": peak - base,
        "base_bytes": base,
        "seconds": seconds,
        "max_error": worst,
        "allowed": tolerance.allowed("vision_block", "float32", K=K),
        "method": method,
    }


def measured(spec: str, sides, width=FULL_WIDTH, check: int = 3, parallel: bool = True) -> list[dict]:
    """measure() for each side, each in a fresh process (torch's allocator state and earlier peaks do not carry
    over); side by side when `parallel` (each figure is its own process's resident set; seconds then overlap)."""

    def start(side):
        return subproc.popen(
            subproc.python("-m", "vitspec.tests.test_extremes", spec, side, *width, RUN.get("dtype") or "", check)
        )

    procs = [start(side) for side in sides] if parallel else []
    outputs = [p.communicate(timeout=1800) for p in procs] if parallel else []
    for side in [] if parallel else sides:
        procs.append(start(side))
        outputs.append(procs[-1].communicate(timeout=1800))
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]


def growth(figures: list[dict]) -> list[float]:
    """Ratios of extra peak memory between consecutive sizes (each 4x the patches of the one before)."""
    return [b["extra_bytes"] / a["extra_bytes"] for a, b in zip(figures, figures[1:])]


def report(figures) -> str:
    return "; ".join(
        f"N={f['patches']}: +{f['extra_bytes'] / 2**20:.0f} MiB, {f['seconds']:.1f} s, error {f['max_error']:.2g}"
        for f in figures
    )


def require_cpu_target(target):
    if not str(getattr(target, "device", "cpu")).startswith("cpu") or not Path("/proc/self/status").exists():
        pytest.skip("peak memory is measured from the process's resident set: a CPU target on Linux only")


def check_linear(target, sides, width=FULL_WIDTH, parallel=True):
    require_cpu_target(target)
    figures = measured(RUN["target"], sides, width, parallel=parallel)
    exercised("vision_block")  # the children called the target's vision_block
    print(f"\nwindow block {width} on grids {sides}: {report(figures)} ({figures[0]['method']})")
    assert all(r <= GROWTH for r in growth(figures)), f"peak memory grows faster than linearly: {report(figures)}"
    if target_dtype(target) in ("float32", "float64"):  # windows checked against the float64 reference block
        assert all(f["max_error"] <= f["allowed"] for f in figures), f"block output off reference: {report(figures)}"


@pytest.mark.stage("vision_block")
def test_full_width_window_block_memory_light(target):
    check_linear(target, [16, 32])


@slow
@pytest.mark.stage("vision_block")
def test_full_width_window_block_memory_largest_grid(target):
    """Grids 64, 128 and 256 square (4096 to 65536 patches), full width: about 2 minutes, 7 GB at the largest."""
    check_linear(target, [64, 128, 256], parallel=False)


@pytest.mark.negative_control
def test_memory_check_catches_a_dense_mask():
    """A block that masks attention with an N x N matrix computes the same values and fails the growth check."""
    figures = measured("dense", (32, 64), (64, 4, 96))
    print(f"\ndense-mask block (64, 4, 96) on grids 32, 64: {report(figures)}")
    assert all(f["max_error"] <= f["allowed"] for f in figures), report(figures)
    assert growth(figures)[0] > GROWTH, f"the growth check misses an N x N buffer: {report(figures)}"


if __name__ == "__main__":
    spec, side, hidden, heads, inter, dtype, check = sys.argv[1:8]
    print(json.dumps(measure(spec, int(side), int(hidden), int(heads), int(inter), dtype or None, int(check))))
