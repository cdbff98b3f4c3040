"""window_index and cu_seqlens (SPEC-NOTES §3): exact against the reference, the window invariants checked
bit-exactly on cell coordinates, the worked values, and a negative control for every invariant."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

from vitspec.reference import tower as ref_tower, windows as ref_windows
from vitspec.reference.weights import random_weights
from vitspec.spec.configs import small_config
from vitspec.spec.examples import WINDOW_EXAMPLES
from vitspec.spec.protocol import subdict
from vitspec.tests import baseline, strategies as S
from vitspec.tests.checks import assert_index_equal, canonical_windows, fail, target_dtype, to_numpy

KNOWN_BUG_GRIDS = (
    [(1, 24, 24)],
    [(1, 16, 16)],
    [(1, 20, 12)],
    [(3, 10, 22)],
    [(2, 10, 6)],
    [(1, 2, 40)],
    [(1, 4, 6), (2, 6, 4)],
    [(1, 18, 2), (1, 8, 8)],
)
big_grids = S.grid_lists(max_images=3, max_cells=20, max_t=4, max_patches=4000)


def cell_coordinates(grid_thw) -> list[tuple[int, int, int, int]]:
    """(image, frame, row, col) of every merged cell in raster order: the meaning of a window_index entry."""
    return [
        (i, f, r, c)
        for i, (t, h, w) in enumerate(grid_thw)
        for f in range(t)
        for r in range(h // 2)
        for c in range(w // 2)
    ]


def check_windows(grid_thw, index, cu) -> None:
    """WIN-PERM, WIN-TILES, WIN-SIZES, WIN-COUNT: a permutation of the cells into 4×4-cell tiles of each frame's
    merged grid, tiled from the top-left, windows row-major, cells row-major, partial only at right/bottom."""
    ctx = dict(grid_thw=grid_thw)
    index, cu = to_numpy(index).astype(np.int64), to_numpy(cu).astype(np.int64)
    coords = cell_coordinates(grid_thw)
    if sorted(index.tolist()) != list(range(len(coords))):
        fail(
            "window_index",
            "window_index is not a permutation of the merged cells",
            ctx,
            [f"length {index.size} for {len(coords)} cells; head {index[:16].tolist()}"],
        )
    sizes = np.diff(cu)
    if cu[0] != 0 or cu[-1] != 4 * len(coords) or np.any(sizes <= 0) or np.any(sizes > 64) or np.any(sizes % 4):
        fail(
            "window_index",
            "window sizes must lie in (0, 64] patches, be multiples of 4 and sum to the patches",
            ctx,
            [f"cu_window_seqlens {cu.tolist()[:20]}"],
        )
    expected_count = sum(t * math.ceil(h / 8) * math.ceil(w / 8) for t, h, w in grid_thw)
    if sizes.size != expected_count:
        fail("window_index", f"{sizes.size} windows, expected sum t*ceil(h/8)*ceil(w/8) = {expected_count}", ctx)
    keys = []
    for a, b in zip(cu[:-1] // 4, cu[1:] // 4):
        cells = [coords[j] for j in index[a:b]]
        image, frame, r0, c0 = cells[0]
        top, left = 4 * (r0 // 4), 4 * (c0 // 4)
        _, h, w = grid_thw[image]
        tile = [
            (image, frame, r, c) for r in range(top, min(top + 4, h // 2)) for c in range(left, min(left + 4, w // 2))
        ]
        if cells != tile:
            fail(
                "window_index",
                f"window at cells {a}..{b} is not the 4x4 tile at row {top}, col {left} of image "
                f"{image} frame {frame}, row-major",
                ctx,
                [f"got (image, frame, row, col) {cells[:6]}..."],
            )
        keys.append((image, frame, top, left))
    if keys != sorted(keys):
        fail(
            "window_index",
            "windows are not visited image by image, frame by frame, row-major",
            ctx,
            [f"window order {keys[:8]}"],
        )


# Planted bugs: each is a (grid_thw) -> (window_index, cu_window_seqlens) that a published port has had.


def hf_padding_without_unique(grid_thw):
    """The pad formula adds a whole empty window when a side is divisible by 4; duplicates kept."""
    index, cu = [], [0]
    offset = 0
    for t, h, w in grid_thw:
        rows, cols = h // 2, w // 2
        nh, nw = (rows + 4 - rows % 4) // 4, (cols + 4 - cols % 4) // 4
        for f in range(t):
            for a in range(nh):
                for b in range(nw):
                    cells = [
                        offset + (f * rows + r) * cols + c
                        for r in range(4 * a, min(4 * a + 4, rows))
                        for c in range(4 * b, min(4 * b + 4, cols))
                    ]
                    index += cells
                    cu.append(cu[-1] + 4 * len(cells))
        offset += t * rows * cols
    return np.array(index), np.array(cu)


def frames_as_one_tall_grid(grid_thw):
    """The frames of a video stacked into one (t*h, w) grid: windows straddle frames."""
    return ref_windows.window_index([(1, t * h, w) for t, h, w in grid_thw])


def windows_of_8_cells(grid_thw):
    return ref_windows.window_index(grid_thw, window_size=224)


def windows_column_major(grid_thw):
    """Cells listed column-major inside each window."""
    index, cu = ref_windows.window_index(grid_thw)
    coords = cell_coordinates(grid_thw)
    out = index.copy()
    for a, b in zip(cu[:-1] // 4, cu[1:] // 4):
        out[a:b] = sorted(index[a:b], key=lambda j: (coords[j][3], coords[j][2]))
    return out, cu


def no_image_offset(grid_thw):
    """Every image's cell ids start again at 0."""
    parts = [ref_windows.window_index([g]) for g in grid_thw]
    cu = [0]
    for _, c in parts:
        cu += (c[1:] + cu[-1]).tolist()
    return np.concatenate([p[0] for p in parts]), np.array(cu)


PLANTED_WINDOWS = [frames_as_one_tall_grid, windows_of_8_cells, windows_column_major, no_image_offset]
# hf_padding_without_unique is not a bug: zero-length windows are an equivalent form (spec/differences.py
# EQUIVALENT_FORMS); test_target_keeping_empty_windows_passes_and_records_it checks that it passes and is recorded.


def rejected_somewhere(check, planted) -> bool:
    """True when `check` raises on at least one known-bug grid for the planted function."""
    for grid in KNOWN_BUG_GRIDS:
        try:
            check(grid, *planted(grid))
        except AssertionError:
            return True
    return False


@pytest.mark.stage("window_index")
@given(big_grids)
@example([(1, 24, 24)])
@example([(1, 2, 40)])
@example([(3, 10, 22)])
@example([(1, 16, 16), (2, 8, 10)])
@example(S.BOUNDARY_BATCHES[0])
@example(S.BOUNDARY_BATCHES[1])
def test_window_index_matches_reference(stage, grid_thw):
    check_window_index(stage("window_index"), grid_thw)


def check_window_index(window_index, grid_thw) -> None:
    """window_index and cu_window_seqlens equal the reference's, after dropping repeated boundaries."""
    index, cu = window_index(np.array(grid_thw, dtype=np.int64))
    ref_index, ref_cu = ref_windows.window_index(grid_thw)
    assert_index_equal("window_index", index, ref_index, grid_thw=grid_thw, output="window_index")
    assert_index_equal(
        "window_index", canonical_windows(grid_thw, cu), ref_cu, grid_thw=grid_thw, output="cu_window_seqlens"
    )


class KeepsEmptyWindows:
    """The reference target, except that window_index keeps HF's zero-length windows (no unique_consecutive)."""

    name = "reference keeping empty windows"

    def window_index(self, grid_thw, window_size=112, patch_size=14, merge_size=2):
        return hf_padding_without_unique([tuple(int(v) for v in row) for row in np.asarray(grid_thw)])


@pytest.mark.conformance
@pytest.mark.stage("window_index")
def test_target_keeping_empty_windows_passes_and_records_it(request):
    """Meaning, not representation: empty windows kept pass every window_index check and are recorded."""
    target = KeepsEmptyWindows()
    for grid in ([(1, 16, 16)], [(1, 24, 24)], [(2, 8, 10), (1, 20, 12)]):
        raw = target.window_index(np.array(grid))[1]
        assert np.any(np.diff(raw) == 0), f"grid {grid}: the planted target kept no empty window"
        check_window_index(target.window_index, grid)
        check_windows(
            grid,
            target.window_index(np.array(grid))[0],
            canonical_windows(grid, target.window_index(np.array(grid))[1]),
        )
    for grid in ([(1, 2, 8)], [(1, 8, 8), (2, 4, 6)]):  # within one window: the WIN-SMALL check
        index, cu_window = target.window_index(np.array(grid))
        assert np.any(np.diff(cu_window) == 0), f"grid {grid}: the planted target kept no empty window"
        check_one_window(grid, index, cu_window, ref_windows.cu_seqlens(grid))
    recorded = [v for k, v in request.node.user_properties if k == "vitspec_difference"]
    assert recorded and all(v.startswith("window_index: empty windows kept: ") for v in recorded), recorded


@pytest.mark.negative_control
@pytest.mark.stage("window_index")
def test_canonical_comparison_still_rejects_wrong_windows():
    """Dropping repeated boundaries hides nothing else: a window order error still fails."""
    check_window_index(ref_windows.window_index, [(1, 20, 12)])
    with pytest.raises(AssertionError, match="entries differ"):
        check_window_index(lambda g: windows_column_major([(1, 20, 12)]), [(1, 20, 12)])


@pytest.mark.stage("window_index")
@pytest.mark.parametrize("grid", sorted(WINDOW_EXAMPLES))
def test_window_index_worked_values(stage, grid):
    """SPEC-NOTES §3 worked values, written out by hand."""
    index, cu = stage("window_index")(np.array([grid], dtype=np.int64))
    expected = WINDOW_EXAMPLES[grid]
    assert_index_equal(
        "window_index", canonical_windows([grid], cu), np.array(expected["cu_window_seqlens"]), grid_thw=[grid]
    )
    head = expected.get("window_index_head")
    if head is not None:
        assert_index_equal("window_index", to_numpy(index)[: len(head)], np.array(head), grid_thw=[grid])


@pytest.mark.stage("window_index")
@given(big_grids)
@example([(1, 24, 24)])
@example([(2, 10, 6)])
@example([(1, 4, 6), (2, 6, 4)])
@example(S.BOUNDARY_BATCHES[0])
@example(S.BOUNDARY_BATCHES[1])
def test_window_invariants(stage, grid_thw):
    index, cu = stage("window_index")(np.array(grid_thw, dtype=np.int64))
    check_windows(grid_thw, index, canonical_windows(grid_thw, cu))


@pytest.mark.negative_control
@pytest.mark.stage("window_index")
@pytest.mark.parametrize("planted", PLANTED_WINDOWS, ids=lambda f: f.__name__)
def test_window_invariants_reject(planted):
    check_windows([(1, 20, 12)], *ref_windows.window_index([(1, 20, 12)]))  # the check passes on the reference
    assert rejected_somewhere(check_windows, planted), f"check_windows accepts the planted bug {planted.__name__}"


def self_inverse(grid_thw) -> bool:
    """window_index is its own inverse on this grid (then a tower that un-permutes with it is not wrong there)."""
    index = ref_windows.window_index(grid_thw)[0]
    return bool(np.array_equal(index[index], np.arange(index.size)))


@st.composite
def window_order_grids(draw):
    """A batch whose first grid spans several windows in both directions and whose window order is not its own
    inverse, so window order, raster order and the wrong inverse (window_index itself) all differ."""
    first = draw(
        S.grids(max_cells=14, max_t=2, max_patches=600, shape="several windows").filter(lambda g: not self_inverse([g]))
    )
    rest = draw(S.grid_lists(max_images=2, max_cells=8, max_t=2, max_patches=300)) if draw(st.booleans()) else []
    return [first] + rest


LOCAL_CONFIG = small_config(
    depth=2, hidden_size=32, num_heads=2, intermediate_size=40, out_hidden_size=16, fullatt_block_indexes=(1,)
)


def token_local_weights(seed: int) -> dict:
    """Tower weights whose blocks are the identity (attention and MLP weights and biases zero): each output token
    is then a function of its own merged cell alone, so the output order shows where each cell went."""
    weights = random_weights(LOCAL_CONFIG, seed)
    return {k: np.zeros_like(v) if k.startswith("blocks.") and ".norm" not in k else v for k, v in weights.items()}


def check_restores_raster_order(tower, grid_thw, seed: int, dtype: str) -> None:
    """WIN-INVERSE: the tower moves merged cells to window order and must put its output back in raster order
    with the inverse of window_index. Checked on the target's own tower with token-local weights: each output
    row is identified by the float64 reference row it lies nearest to (rows differ by O(1), a dtype's rounding
    by far less); the number of rows is the grid's merged cells."""
    weights, px, g = token_local_weights(seed), S.pixel_values(seed, grid_thw), np.array(grid_thw, dtype=np.int64)
    ctx = dict(grid_thw=grid_thw, seed=seed, dtype=dtype)
    got = to_numpy(tower(px, g, weights, LOCAL_CONFIG))
    expected = ref_tower.vision_tower(px, g, weights, LOCAL_CONFIG)  # raster order, one row per merged cell
    cells = S.num_patches(grid_thw) // 4
    if got.shape != expected.shape:
        fail(
            "vision_tower",
            f"output shape {got.shape} for the {cells} merged cells of the grid, expected {expected.shape}",
            ctx,
        )
    distance = np.sum((got[:, None, :] - expected[None, :, :]) ** 2, axis=-1)
    source = np.argmin(np.where(np.isfinite(distance), distance, np.inf), axis=1)
    wrong = np.flatnonzero(source != np.arange(cells))
    if wrong.size:
        r = int(wrong[0])
        fail(
            "vision_tower",
            "the tower does not put its tokens back in raster order (WIN-INVERSE)",
            ctx,
            [
                f"{wrong.size} of {cells} output rows hold another merged cell's token; row {r} holds cell "
                f"{int(source[r])}",
                f"window_index head {ref_windows.window_index(grid_thw)[0][:12].tolist()}",
            ],
        )


@pytest.mark.stage("vision_tower")
@S.heavy(0.6)
@given(window_order_grids(), S.seeds)
@example([(1, 24, 24)], 0)
@example([(2, 12, 20), (1, 4, 6)], 1)
def test_tower_restores_raster_order(stage, target, grid_thw, seed):
    check_restores_raster_order(stage("vision_tower"), grid_thw, seed, target_dtype(target))


def tower_restoring_with(inverse, dtype: str):
    """A planted tower computing in dtype (the same-dtype baseline's embedding and merger: with token-local weights
    the blocks are the identity) whose window-order output is put back with inverse(window_index) instead of
    argsort(window_index)."""

    def tower(pixel_values, grid_thw, weights, config):
        rows = [tuple(int(v) for v in r) for r in np.asarray(grid_thw)]
        x = baseline.patch_embed(pixel_values, weights["patch_embed.proj.weight"], dtype)
        raster = baseline.merger(x, subdict(weights, "merger"), config["spatial_merge_size"], 1e-6, dtype)
        index = ref_windows.window_index(rows)[0]
        return raster[index][inverse(index)]

    return tower


WRONG_INVERSES = {
    "window_index_as_inverse": lambda index: index,
    "random_permutation": lambda index: np.random.default_rng(0).permutation(index.size),
    "five_entry_index": lambda index: index[:5],
}


@pytest.mark.negative_control
@pytest.mark.stage("vision_tower")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("wrong", sorted(WRONG_INVERSES))
def test_restore_check_rejects_wrong_inverses(wrong, dtype):
    grid = [(1, 12, 20)]  # window order is neither raster order nor its own inverse
    check_restores_raster_order(tower_restoring_with(np.argsort, dtype), grid, 0, dtype)
    with pytest.raises(AssertionError, match="raster order|output shape"):
        check_restores_raster_order(tower_restoring_with(WRONG_INVERSES[wrong], dtype), grid, 0, dtype)


@pytest.mark.stage("window_index")
def test_336_grid_window_index_is_not_its_own_inverse(stage):
    """SPEC-NOTES §3: on 24×24 patches (336×336 px) window_index is not its own inverse, so a tower that
    un-permutes with window_index instead of argsort fails there; merged grids 4×4 (112 px) and 16×16 (448 px)
    hide it."""
    idx24 = to_numpy(stage("window_index")(np.array([[1, 24, 24]]))[0])
    assert not np.array_equal(idx24[idx24], np.arange(idx24.size)), "24x24 window_index must not be self-inverse"
    for side in (8, 32):
        idx = to_numpy(stage("window_index")(np.array([[1, side, side]]))[0])
        assert np.array_equal(idx[idx], np.arange(idx.size)), f"{side}x{side} window_index is self-inverse (spec)"


def check_one_window(grid_thw, index, cu_window, cu_full) -> None:
    """WIN-SMALL: a frame of at most 8×8 patches is one window, so window order is raster order and the window
    segments are the full-attention segments: window blocks equal full blocks there."""
    index, cu_window = to_numpy(index), canonical_windows(grid_thw, cu_window)
    if not np.array_equal(index, np.arange(S.num_patches(grid_thw) // 4)) or not np.array_equal(
        cu_window, to_numpy(cu_full)
    ):
        fail(
            "window_index",
            "a grid within one window must keep raster order and the full segments",
            dict(grid_thw=grid_thw),
            [
                f"window_index {index[:12].tolist()}",
                f"cu_window_seqlens {cu_window[:8].tolist()}, cu_seqlens {to_numpy(cu_full)[:8].tolist()}",
            ],
        )


@pytest.mark.stage("window_index", helpers=("cu_seqlens",))
@given(S.grid_lists(max_images=3, max_cells=4, max_t=3, max_patches=400))
def test_grid_within_one_window_has_windows_equal_to_full_segments(stage, grid_thw):
    """The target's window segments against its own full segments (as its tower uses both), or against the
    reference's when it has no cu_seqlens: window_index is checked either way."""
    g = np.array(grid_thw, dtype=np.int64)
    check_one_window(grid_thw, *stage("window_index")(g), stage.or_reference("cu_seqlens")(g))


@pytest.mark.negative_control
@pytest.mark.stage("window_index")
def test_one_window_check_rejects_windows_of_2_cells():
    grid = [(2, 8, 8)]
    check_one_window(grid, *ref_windows.window_index(grid), ref_windows.cu_seqlens(grid))
    with pytest.raises(AssertionError, match="within one window"):
        check_one_window(grid, *ref_windows.window_index(grid, window_size=56), ref_windows.cu_seqlens(grid))


@pytest.mark.stage("cu_seqlens")
@given(big_grids)
@example([(3, 10, 22)])
@example([(1, 4, 4), (2, 6, 8)])
def test_cu_seqlens_matches_reference(stage, grid_thw):
    cu = stage("cu_seqlens")(np.array(grid_thw, dtype=np.int64))
    assert_index_equal("cu_seqlens", cu, ref_windows.cu_seqlens(grid_thw), grid_thw=grid_thw)


def check_full_segments(grid_thw, cu) -> None:
    """SEG-FRAMES: one full-attention segment per (image, frame), each of h*w patches, in order."""
    lengths = np.diff(to_numpy(cu).astype(np.int64)).tolist()
    expected = [h * w for t, h, w in grid_thw for _ in range(t)]
    if to_numpy(cu)[0] != 0 or lengths != expected:
        fail(
            "cu_seqlens",
            "full-attention segments must be one per image and frame",
            dict(grid_thw=grid_thw),
            [f"segment lengths {lengths[:12]}, expected {expected[:12]}"],
        )


@pytest.mark.stage("cu_seqlens")
@given(big_grids)
def test_cu_seqlens_one_segment_per_frame(stage, grid_thw):
    check_full_segments(grid_thw, stage("cu_seqlens")(np.array(grid_thw, dtype=np.int64)))


@pytest.mark.negative_control
@pytest.mark.stage("cu_seqlens")
@pytest.mark.parametrize(
    "planted",
    [
        lambda g: np.concatenate([[0], np.cumsum([t * h * w for t, h, w in g])]),  # one segment per image
        lambda g: np.array([0, sum(t * h * w for t, h, w in g)]),  # the whole batch as one segment
    ],
    ids=["per_image_segments", "one_segment_for_the_batch"],
)
def test_full_segment_check_rejects(planted):
    check_full_segments([(3, 10, 22)], ref_windows.cu_seqlens([(3, 10, 22)]))
    with pytest.raises(AssertionError, match="one per image and frame"):
        check_full_segments([(1, 4, 4), (3, 10, 22)], planted([(1, 4, 4), (3, 10, 22)]))
