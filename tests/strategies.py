"""Hypothesis strategies: Hypothesis draws the structure (grids, configs, seeds), a seeded NumPy Generator fills
the tensors. Grids are built valid by construction and biased to where the spec's bug classes hide (SPEC-NOTES
§7): merged grids 1×n and n×1, merged sides ≡ 0, 1, 2, 3 (mod 4), grids larger than one 4×4-cell window,
non-square grids, videos (t > 1) and mixed batches.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, Phase, event, given, settings, strategies as st

from vitspec.reference import rope as ref_rope, windows as ref_windows
from vitspec.spec.configs import periodic_fullatt, small_config
from vitspec.spec.protocol import capabilities

MERGE = 2  # spatial_merge_size
WINDOW_CELLS = 4  # window_size 112 / patch 14 / merge 2
SHAPES = ("1xn", "nx1", "one window", "several windows", "mod 4", "any")

seeds = st.integers(0, 2**32 - 1)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def label_grid(t: int, h: int, w: int) -> None:
    """Record which boundary classes one grid (patch units) hits."""
    ch, cw = h // MERGE, w // MERGE
    if ch == 1 or cw == 1:
        event("merged grid 1×n or n×1")
    event(f"merged sides mod 4: {ch % 4}, {cw % 4}")
    event("larger than one window" if ch > WINDOW_CELLS or cw > WINDOW_CELLS else "fits one window")
    if t > 1:
        event("video t > 1")
    if ch != cw:
        event("non-square")


@st.composite
def grids(draw, max_cells: int = 12, max_t: int = 3, max_patches: int | None = None, shape: str | None = None):
    """One grid_thw row (t, h, w) in patch units: h, w even, t >= 1, at most max_patches patches."""
    kind = shape or draw(st.sampled_from(SHAPES))
    side = lambda lo, hi: draw(st.integers(min(lo, max_cells), max(1, min(hi, max_cells))))  # noqa: E731
    if kind == "1xn":
        ch, cw = 1, side(2, max_cells)
    elif kind == "nx1":
        ch, cw = side(2, max_cells), 1
    elif kind == "one window":
        ch, cw = side(1, WINDOW_CELLS), side(1, WINDOW_CELLS)
    elif kind == "several windows":
        ch, cw = side(WINDOW_CELLS + 1, max_cells), side(WINDOW_CELLS + 1, max_cells)
    elif kind == "mod 4":  # a multiple of the window plus each residue
        ch = 4 * draw(st.integers(0, max_cells // 4)) + draw(st.integers(0, 3))
        cw = 4 * draw(st.integers(0, max_cells // 4)) + draw(st.integers(0, 3))
        ch, cw = max(1, min(ch, max_cells)), max(1, min(cw, max_cells))
    else:
        ch, cw = side(1, max_cells), side(1, max_cells)
    t = draw(st.one_of(st.just(1), st.integers(1, max_t)))
    if max_patches is not None:  # shrink into the budget instead of filtering
        cells = max(1, max_patches // (MERGE * MERGE))
        ch = min(ch, cells)
        cw = min(cw, max(1, cells // ch))
        t = min(t, max(1, cells // (ch * cw)))
    h, w = MERGE * ch, MERGE * cw
    label_grid(t, h, w)
    return (t, h, w)


@st.composite
def grid_lists(draw, max_images: int = 3, max_cells: int = 12, max_t: int = 3, max_patches: int = 1200):
    """A batch of 1..max_images grids with at most max_patches patches in all."""
    n = draw(st.integers(1, max_images))
    rows, left = [], max_patches
    for i in range(n):
        budget = left - MERGE * MERGE * (n - 1 - i)
        rows.append(draw(grids(max_cells=max_cells, max_t=max_t, max_patches=budget)))
        left -= rows[-1][0] * rows[-1][1] * rows[-1][2]
    event(f"batch of {n} image(s)")
    return rows


# Two small batches that together reach every grid and batch class of tests/test_strategy_coverage.py (merged
# 1×n and n×1, every side residue mod 4, one window and several, square and not, t = 1 and t > 1, a video beside a
# still image, different sizes, a grid larger than one window in a batch), each within the smallest budget of the
# tests that draw grid batches (2 images, 600 patches). Those tests carry them as explicit examples, which every
# Hypothesis profile runs, so CI reaches every class whatever its draws.
BOUNDARY_BATCHES = ([(1, 2, 40), (2, 14, 2)], [(1, 12, 12), (1, 8, 6)])


def num_patches(grid_thw) -> int:
    return int(sum(t * h * w for t, h, w in grid_thw))


def running_target_layout() -> str:
    """The fullatt_layout the running check's target declares ("any" outside a target's check)."""
    from vitspec.tests import checks

    item = checks.CURRENT.get("item")
    target = getattr(getattr(item, "config", None), "_vitspec_target", None)
    return capabilities(target).fullatt_layout if target is not None else "any"


@st.composite
def configs(draw, max_depth: int = 4):
    """A small config with the real geometry, at least one full-attention and one window block; for a target that
    declares fullatt_layout "periodic", a periodic layout (period 2..depth: one window block at least)."""
    depth = draw(st.integers(2, max_depth))
    hidden, heads = draw(st.sampled_from([(32, 2), (32, 4), (64, 4), (48, 3)]))  # head_dim 16, 8, 16, 16
    inter = draw(st.sampled_from([40, 96]))
    out = draw(st.sampled_from([16, 48]))
    if running_target_layout() == "periodic":  # the target runs only periodic layouts (capabilities)
        full = set(periodic_fullatt(depth, draw(st.integers(2, depth))))
    else:
        full = draw(st.sets(st.integers(0, depth - 1), min_size=1, max_size=depth - 1))
    event(f"full-attention blocks {sorted(full)} of depth {depth}")
    return small_config(depth, hidden, heads, inter, out, tuple(sorted(full)))


@st.composite
def segments(draw, max_segments: int = 4, max_length: int = 80):
    """cu_seqlens of 1..max_segments segments: lengths 0..max_length, repeats, uneven neighbours and (valid,
    rare) empty segments included; at least one token."""
    lengths = draw(
        st.lists(st.sampled_from([0, 1, 3, 4, 16, 64]) | st.integers(1, max_length), min_size=1, max_size=max_segments)
    )
    if sum(lengths) == 0:
        lengths[-1] = 1
    if 0 in lengths:
        event("an empty segment")
    if len(set(lengths)) < len(lengths):
        event("equal-length segments")
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


float_dtypes = st.sampled_from(["float64", "float32", "bfloat16", "float16"])
scales = st.sampled_from([1.0, 1.0, 0.01, 30.0])  # activation magnitudes: typical, tiny (eps matters), large


def normal(seed: int, shape, scale: float = 1.0) -> np.ndarray:
    """Seeded float64 N(0, scale^2) values."""
    return scale * rng(seed).standard_normal(shape)


def pixel_values(seed: int, grid_thw, row_size: int = 1176) -> np.ndarray:
    """Rows of normalized pixels: CLIP-normalized values lie in about [-1.8, 2.2]."""
    return rng(seed).uniform(-1.8, 2.2, (num_patches(grid_thw), row_size))


@st.composite
def positions(draw, max_position: int = 1023):
    """(row, col) ids: a grid's (small, realistic) or random ones up to max_position (large angles, bf16-unsafe)."""
    if draw(st.booleans()):
        return ref_rope.rotary_position_ids(draw(grid_lists(max_patches=600)))
    n, seed = draw(st.integers(1, 64)), draw(seeds)
    event("positions beyond 256 (not exact in bf16)")
    return rng(seed).integers(0, max_position + 1, (n, 2))


@st.composite
def attention_problems(draw, cu=None):
    """The structure of an attention problem: segments, heads, head_dim, a seed and the scale of q and k
    (softmax from flat to peaked). make_qkv fills the tensors."""
    return dict(
        cu_seqlens=draw(segments()) if cu is None else cu,
        heads=draw(st.integers(1, 3)),
        head_dim=draw(st.sampled_from([8, 16, 80])),
        seed=draw(seeds),
        sharpness=draw(st.sampled_from([0.3, 1.0, 2.0])),
    )


@st.composite
def window_attention_problems(draw):
    """An attention problem whose segments are the windows of a drawn batch of grids."""
    grid = draw(grid_lists(max_images=2, max_cells=10, max_patches=500))
    return dict(grid_thw=grid, **draw(attention_problems(cu=ref_windows.window_index(grid)[1])))


def make_qkv(problem):
    """(q, k, v, cu_seqlens) of a drawn attention problem, filled from its seed."""
    cu = np.asarray(problem["cu_seqlens"], dtype=np.int64)
    generator = rng(problem["seed"])
    shape = (int(cu[-1]), problem["heads"], problem["head_dim"])
    q, k = (problem["sharpness"] * generator.standard_normal(shape) for _ in range(2))
    return q, k, generator.standard_normal(shape), cu


@st.composite
def block_segments(draw):
    """(config, grid_thw, window, segment): a block's config and batch, window or full segments, one segment."""
    config = draw(configs(max_depth=2))
    grid = draw(grid_lists(max_images=2, max_cells=10, max_patches=500))
    window = draw(st.booleans())
    cu = ref_windows.window_index(grid)[1] if window else ref_windows.cu_seqlens(grid)
    return config, grid, window, draw(st.integers(0, len(cu) - 2))


def heavy(fraction: float = 0.4):
    """Settings for a property whose examples run the whole tower: a fraction of the profile's examples."""
    from hypothesis import settings

    return settings(max_examples=max(2, int(settings.default.max_examples * fraction)))


def draw_many(strategy, n: int = 200) -> list:
    """n examples of a strategy from a derandomized, shrink-free Hypothesis run (the same every time)."""
    seen = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(x):
        seen.append(x)

    collect()
    return seen
