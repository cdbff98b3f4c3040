"""The strategies reach the boundary classes they claim (tests/strategies.py, SPEC-NOTES §7), so coverage cannot
silently collapse: each strategy, as the suite instantiates it, is drawn a fixed number of times in a
derandomized run, every draw is classified here (independently of the strategies' own event() labels), and
each claimed class must appear at least MIN_SHARE of the time. A negative control shows a collapsed strategy
fails the same check.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import Phase, example, given, strategies as st

from vitspec.tests import strategies as S

DRAWS = 200
MIN_SHARE = 0.02  # each class in at least 2 % of the draws (4 of 200)


def grid_classes(t: int, h: int, w: int) -> set[str]:
    """The boundary classes of one grid (patch units): merged 1×n / n×1, side residues mod 4, window fit, shape, t."""
    ch, cw = h // 2, w // 2
    out = {
        f"merged rows ≡ {ch % 4} (mod 4)",
        f"merged cols ≡ {cw % 4} (mod 4)",
        "larger than one window" if max(ch, cw) > 4 else "fits one window",
        "non-square" if ch != cw else "square",
        "video t > 1" if t > 1 else "still t = 1",
    }
    if ch == 1 and cw > 1:
        out.add("merged 1×n")
    if cw == 1 and ch > 1:
        out.add("merged n×1")
    return out


def batch_classes(rows) -> set[str]:
    """Per-grid classes of every grid, plus the batch classes: several items, a video beside a still image,
    different sizes, and a grid larger than one window inside a batch."""
    out = set().union(*(grid_classes(*g) for g in rows))
    if len(rows) > 1:
        out.add("batch of several")
        if any(t > 1 for t, _, _ in rows) and any(t == 1 for t, _, _ in rows):
            out.add("video beside a still image")
        if len({(h, w) for _, h, w in rows}) > 1:
            out.add("different sizes in a batch")
        if any(max(h, w) > 8 for _, h, w in rows):
            out.add("batch with a grid larger than one window")
    return out


GRID_CLASSES = {f"merged {a} ≡ {r} (mod 4)" for a in ("rows", "cols") for r in range(4)} | {
    "larger than one window",
    "fits one window",
    "non-square",
    "square",
    "video t > 1",
    "still t = 1",
    "merged 1×n",
    "merged n×1",
}
BATCH_CLASSES = GRID_CLASSES | {
    "batch of several",
    "video beside a still image",
    "different sizes in a batch",
    "batch with a grid larger than one window",
}


def assert_reaches(draws, classify, required: set[str], what: str) -> Counter:
    """Every required class appears in at least MIN_SHARE of the draws (AssertionError naming the missing ones)."""
    counts = Counter(c for x in draws for c in classify(x))
    floor = max(1, int(MIN_SHARE * len(draws)))
    missing = {c: counts.get(c, 0) for c in sorted(required) if counts.get(c, 0) < floor}
    assert not missing, (
        f"{what}: classes drawn fewer than {floor} times in {len(draws)} draws: {missing}; all counts {dict(counts)}"
    )
    return counts


# grid_lists as the suite instantiates it: (max_images, max_cells, max_t, max_patches)
GRID_LISTS = {
    "tower": (3, 12, 3, 700),
    "windows": (3, 20, 4, 4000),
    "block": (2, 10, 3, 600),
    "isolation": (3, 8, 3, 500),
    "rope": (3, 20, 4, 3000),
    "tokens": (4, 40, 5, 20000),
}


def test_grids_reach_every_boundary_class():
    """grids(): valid grids reaching 1×n, n×1, every residue mod 4, both window fits, both shapes, t = 1 and t > 1."""
    draws = S.draw_many(S.grids())
    for t, h, w in draws:
        assert t >= 1 and h > 0 and w > 0 and h % 2 == 0 and w % 2 == 0 and max(h, w) <= 2 * 12, (t, h, w)
    assert_reaches(draws, lambda g: grid_classes(*g), GRID_CLASSES, "grids()")


@pytest.mark.parametrize("use", sorted(GRID_LISTS))
def test_grid_lists_as_used_reach_every_class_within_budget(use):
    """grid_lists as each test file instantiates it: within budget, every batch size, every grid and batch class."""
    max_images, max_cells, max_t, max_patches = GRID_LISTS[use]
    draws = S.draw_many(S.grid_lists(max_images=max_images, max_cells=max_cells, max_t=max_t, max_patches=max_patches))
    for rows in draws:
        assert 1 <= len(rows) <= max_images and S.num_patches(rows) <= max_patches, rows
    sizes = Counter(len(rows) for rows in draws)
    assert all(sizes[n] >= MIN_SHARE * DRAWS for n in range(1, max_images + 1)), f"batch sizes {dict(sizes)}"
    assert_reaches(draws, batch_classes, BATCH_CLASSES, f"grid_lists for {use} {GRID_LISTS[use]}")


def config_classes(cfg) -> set[str]:
    """Where the full-attention blocks sit: first, last, a window block before and after one; the head shape."""
    full, depth = set(cfg["fullatt_block_indexes"]), cfg["depth"]
    window = set(range(depth)) - full
    out = {f"head_dim {cfg['hidden_size'] // cfg['num_heads']}", f"depth {depth}"}
    out |= {"full block first"} if 0 in full else {"window block first"}
    out |= {"full block last"} if depth - 1 in full else {"window block last"}
    if any(w < f for w in window for f in full) and any(w > f for w in window for f in full):
        out.add("window blocks before and after a full block")
    return out


def test_configs_always_mix_full_and_window_blocks_in_every_position():
    """configs(): a full and a window block always; full blocks first, last and between window blocks."""
    draws = S.draw_many(S.configs(max_depth=4))
    for cfg in draws:
        full = set(cfg["fullatt_block_indexes"])
        assert full and len(full) < cfg["depth"] and full <= set(range(cfg["depth"])), cfg
    assert_reaches(
        draws,
        config_classes,
        {
            "full block first",
            "window block first",
            "full block last",
            "window block last",
            "window blocks before and after a full block",
            "head_dim 8",
            "head_dim 16",
            "depth 2",
            "depth 3",
            "depth 4",
        },
        "configs()",
    )


def segment_classes(cu) -> set[str]:
    """Segment shapes attention code gets wrong: one segment, equal and uneven neighbours, 1-token, window-sized."""
    lengths = np.diff(np.asarray(cu)).tolist()
    out = {"one segment" if len(lengths) == 1 else "several segments"}
    if len(set(lengths)) < len(lengths):
        out.add("equal-length segments")
    if any(a != b for a, b in zip(lengths, lengths[1:])):
        out.add("uneven neighbours")
    if 1 in lengths:
        out.add("a 1-token segment")
    if 64 in lengths:
        out.add("a window-sized segment (64)")
    if 0 in lengths:
        out.add("an empty segment")
    return out


def test_segments_reach_every_shape():
    """segments(): valid cu_seqlens with one and several, equal, uneven, 1-token and 64-token segments."""
    draws = S.draw_many(S.segments())
    for cu in draws:
        assert cu[0] == 0 and cu[-1] > 0 and np.all(np.diff(cu) >= 0), cu
    assert_reaches(
        draws,
        segment_classes,
        {
            "one segment",
            "several segments",
            "equal-length segments",
            "uneven neighbours",
            "a 1-token segment",
            "a window-sized segment (64)",
        },
        "segments()",
    )


def test_positions_reach_grids_and_values_beyond_256():
    """positions(): grid positions and values above 256, odd ones included (rounded in bf16)."""
    draws = S.draw_many(S.positions())
    assert_reaches(
        draws,
        lambda p: {
            "beyond 256" if int(np.max(p)) > 256 else "within 256",
            "odd beyond 256" if np.any((p > 256) & (p % 2 == 1)) else "no odd beyond 256",
        },
        {"beyond 256", "within 256", "odd beyond 256"},
        "positions()",
    )


@pytest.mark.negative_control
@pytest.mark.parametrize(
    "collapsed", [st.just((1, 8, 8)), st.tuples(st.just(1), st.sampled_from([2, 4]), st.sampled_from([2, 4]))]
)
def test_coverage_check_rejects_a_collapsed_strategy(collapsed):
    """Negative control: a strategy collapsed to a few square still grids fails the coverage check."""
    with pytest.raises(AssertionError, match="fewer than"):
        assert_reaches(S.draw_many(collapsed, 50), lambda g: grid_classes(*g), GRID_CLASSES, "collapsed")


# The target tests that draw grid batches, with the name of their grid argument: under the ci profile (25
# derandomized draws, 7 for a heavy tower test) a 2 % class is missed more often than not, so each carries
# S.BOUNDARY_BATCHES as explicit examples.
BOUNDARY_TESTS = {
    "test_tower.py::test_vision_tower_matches_reference": "grid_thw",
    "test_windows.py::test_window_index_matches_reference": "grid_thw",
    "test_windows.py::test_window_invariants": "grid_thw",
    "test_block.py::test_vision_block_matches_reference": "grid_thw",
}


def explicit_grids(test, argname: str) -> list:
    """The grid batches of a Hypothesis test's explicit @example()s (positional or by name)."""
    import inspect

    params = [p for p in inspect.signature(test.hypothesis.inner_test).parameters if p not in ("stage", "target")]
    grids = []
    for ex in getattr(test, "hypothesis_explicit_examples", []):
        if argname in ex.kwargs:
            grids.append(ex.kwargs[argname])
        elif params.index(argname) < len(ex.args):
            grids.append(ex.args[params.index(argname)])
    return grids


def check_explicit_examples_reach_every_class(test, argname: str, what: str) -> None:
    """Every grid and batch class is reached by the test's explicit examples alone, and the ci profile runs them."""
    from hypothesis import settings as hsettings

    assert Phase.explicit in hsettings.get_profile("ci").phases, "the ci profile skips explicit examples"
    reached = (
        set().union(*(batch_classes(g) for g in explicit_grids(test, argname)))
        if explicit_grids(test, argname)
        else set()
    )
    missing = sorted(BATCH_CLASSES - reached)
    assert not missing, f"{what}: classes no explicit example reaches (a ci run may miss them): {missing}"


@pytest.mark.parametrize("name", sorted(BOUNDARY_TESTS))
def test_boundary_classes_reached_under_the_ci_profile(name):
    """Each grid-drawing target test reaches every boundary class in every ci run: its explicit examples (which
    the ci profile runs before its 25 derandomized draws) cover all of them within its budget."""
    import importlib

    from vitspec.tests.plugin import _register_profiles

    _register_profiles()
    module, func = name.split("::")
    test = getattr(importlib.import_module(f"vitspec.tests.{module.removesuffix('.py')}"), func)
    check_explicit_examples_reach_every_class(test, BOUNDARY_TESTS[name], name)


def test_boundary_batches_fit_every_budget():
    """S.BOUNDARY_BATCHES stay within the smallest grid budget of the tests that carry them (2 images, 600 patches)."""
    for rows in S.BOUNDARY_BATCHES:
        assert len(rows) <= 2 and S.num_patches(rows) <= 600, rows
    assert BATCH_CLASSES <= set().union(*(batch_classes(g) for g in S.BOUNDARY_BATCHES))


@pytest.mark.negative_control
def test_explicit_example_check_rejects_a_test_without_boundary_examples():
    @given(S.grid_lists())
    @example([(1, 8, 8)])
    def square_only(grid_thw):
        pass

    with pytest.raises(AssertionError, match="no explicit example reaches"):
        check_explicit_examples_reach_every_class(square_only, "grid_thw", "square_only")
