"""The whole vision tower (SPEC-NOTES §3): against the reference under the tolerance model; images and frames
isolated; a batch equal to its images run alone. Planted towers with the bug classes of SPEC-NOTES §7 show each
check rejects them."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import example, given, strategies as st

from vitspec.reference import tower as ref_tower
from vitspec.reference.weights import random_weights
from vitspec.spec.configs import small_config
from vitspec.tests import baseline, strategies as S, tolerance
from vitspec.tests.checks import assert_close, assert_unchanged, target_dtype, to_numpy
from vitspec.tests.problems import K_tower, check_tower_matches, planted_tower

CONFIG = small_config(depth=3, fullatt_block_indexes=(1,))
tower_grids = S.grid_lists(max_images=3, max_cells=12, max_patches=700)


@pytest.mark.stage("vision_tower")
@S.heavy(0.6)
@given(S.configs(max_depth=4), tower_grids, S.seeds)
@example(CONFIG, [(1, 24, 24)], 0)  # 336×336: window_index is not its own inverse
@example(CONFIG, [(1, 2, 40)], 1)  # merged 1×20
@example(CONFIG, [(3, 10, 22)], 2)  # a video of 3 frame pairs
@example(CONFIG, [(1, 12, 18), (2, 4, 6), (1, 16, 2)], 3)  # a mixed batch
@example(CONFIG, S.BOUNDARY_BATCHES[0], 4)
@example(CONFIG, S.BOUNDARY_BATCHES[1], 5)
def test_vision_tower_matches_reference(stage, target, config, grid_thw, seed):
    check_tower_matches(stage("vision_tower"), config, grid_thw, seed, target_dtype(target))


DIFFERENTIAL_BUGS = {
    "window_index_as_inverse": [(1, 24, 24)],
    "full_blocks_never_selected": [(1, 20, 12)],
    "window_and_full_swapped": [(1, 20, 12)],
    "tanh_gelu": [(1, 20, 12)],
    "attention_scale_missing": [(1, 20, 12)],
    "rms_eps_1e-5": [(1, 20, 12)],
}


@pytest.mark.negative_control
@pytest.mark.stage("vision_tower")
@pytest.mark.parametrize("bug", sorted(DIFFERENTIAL_BUGS))
def test_tower_tolerance_rejects(bug):
    grid = DIFFERENTIAL_BUGS[bug]
    check_tower_matches(planted_tower("none"), CONFIG, grid, 0, "float32")
    with pytest.raises(AssertionError, match="exceeds the tolerance"):
        check_tower_matches(planted_tower(bug), CONFIG, grid, 0, "float32")


def token_ranges(grid_thw):
    """(image, frame, first token, last token + 1) of every frame in the raster-order output."""
    out, start = [], 0
    for i, (t, h, w) in enumerate(grid_thw):
        for f in range(t):
            out.append((i, f, start, start + h * w // 4))
            start += h * w // 4
    return out


def check_tower_isolation(tower, config, grid_thw, seed, image: int, frame: int | None, dtype: str) -> None:
    """ISOLATION: perturbing one image (or one frame of a video) leaves the tokens of every other image (frame)
    unchanged."""
    weights, px = random_weights(config, seed), S.pixel_values(seed, grid_thw)
    g = np.array(grid_thw, dtype=np.int64)
    before = to_numpy(tower(px, g, weights, config))
    starts = np.concatenate([[0], np.cumsum([t * h * w for t, h, w in grid_thw])])
    t, h, w = grid_thw[image]
    a, b = (
        (starts[image], starts[image + 1])
        if frame is None
        else (starts[image] + frame * h * w, starts[image] + (frame + 1) * h * w)
    )
    px2 = px.copy()
    px2[a:b] = -px2[a:b][::-1]
    after = tower(px2, g, weights, config)
    keep = np.ones(len(before), dtype=bool)
    for i, f, lo, hi in token_ranges(grid_thw):
        if i == image and (frame is None or f == frame):
            keep[lo:hi] = False
    what = f"perturbing image {image}" + ("" if frame is None else f" frame {frame}") + " moved other tokens"
    assert_unchanged(
        "vision_tower",
        after,
        before,
        keep,
        K=K_tower(config, grid_thw),
        magnitude=tolerance.row_rms(before),
        dtype=dtype,
        what=what,
        grid_thw=grid_thw,
        seed=seed,
    )


@pytest.mark.stage("vision_tower")
@S.heavy(0.3)
@given(S.configs(max_depth=3), S.grid_lists(max_images=3, max_cells=8, max_patches=500), S.seeds)
@example(CONFIG, [(3, 4, 6)], 0)
def test_tower_isolates_images_and_frames(stage, target, config, grid_thw, seed):
    image = seed % len(grid_thw)
    frame = None if grid_thw[image][0] == 1 else (seed // 7) % grid_thw[image][0]
    check_tower_isolation(stage("vision_tower"), config, grid_thw, seed, image, frame, target_dtype(target))


@pytest.mark.negative_control
@pytest.mark.stage("vision_tower")
@pytest.mark.parametrize(
    "bug,grid,frame",
    [("per_image_full_segments", [(2, 8, 8)], 1), ("batch_as_one_segment", [(1, 8, 8), (1, 4, 6)], None)],
)
def test_tower_isolation_check_rejects(bug, grid, frame):
    check_tower_isolation(planted_tower("none"), CONFIG, grid, 0, 0, frame, "float32")
    with pytest.raises(AssertionError, match="moved other tokens"):
        check_tower_isolation(planted_tower(bug), CONFIG, grid, 0, 0, frame, "float32")


def check_batch_equals_separate(tower, config, grid_thw, seed, dtype: str) -> None:
    """BATCH: the tower on a batch equals the tower on each image alone, concatenated."""
    weights, px = random_weights(config, seed), S.pixel_values(seed, grid_thw)
    batch = to_numpy(tower(px, np.array(grid_thw, dtype=np.int64), weights, config))
    starts = np.concatenate([[0], np.cumsum([t * h * w for t, h, w in grid_thw])])
    separate = np.concatenate(
        [
            to_numpy(tower(px[starts[i] : starts[i + 1]], np.array([g], dtype=np.int64), weights, config))
            for i, g in enumerate(grid_thw)
        ]
    )
    assert_unchanged(
        "vision_tower",
        batch,
        separate,
        np.ones(len(separate), dtype=bool),
        K=K_tower(config, grid_thw),
        magnitude=tolerance.row_rms(separate),
        dtype=dtype,
        what="the batch differs from its images run alone",
        grid_thw=grid_thw,
        seed=seed,
    )


@pytest.mark.stage("vision_tower")
@S.heavy(0.3)
@given(S.configs(max_depth=3), S.grid_lists(max_images=3, max_cells=8, max_patches=500), S.seeds)
@example(CONFIG, [(1, 12, 18), (2, 4, 6)], 0)
def test_tower_batch_equals_images_alone(stage, target, config, grid_thw, seed):
    check_batch_equals_separate(stage("vision_tower"), config, grid_thw, seed, target_dtype(target))


@pytest.mark.negative_control
@pytest.mark.stage("vision_tower")
def test_batch_check_rejects_one_segment_for_the_batch():
    grid = [(1, 8, 8), (1, 4, 6)]
    check_batch_equals_separate(planted_tower("none"), CONFIG, grid, 0, "float32")
    with pytest.raises(AssertionError, match="differs from its images"):
        check_batch_equals_separate(planted_tower("batch_as_one_segment"), CONFIG, grid, 0, "float32")


@pytest.mark.modules
@pytest.mark.stage("vision_tower")
@pytest.mark.parametrize("field", ["hidden_size", "intermediate_size", "out_hidden_size", "depth"])
def test_impl_weight_cache_checks_weights_against_each_config(field):
    """impl caches prepared weights per weights dict: a second call with the same dict and another config must
    check the weights against that config (a config whose shapes they do not have is refused) instead of
    reusing the first preparation."""
    from vitspec.impl.target import TorchTarget

    target, config = TorchTarget(dtype="float32"), small_config(depth=2, fullatt_block_indexes=(1,))
    other = {**config, field: config[field] * 2 if field != "hidden_size" else config[field] + config["num_heads"]}
    grid = np.array([(1, 4, 4)])
    weights, px = random_weights(config, 0), S.pixel_values(0, [(1, 4, 4)])
    first = to_numpy(target.vision_tower(px, grid, weights, config))
    with pytest.raises(ValueError, match="weights"):
        target.vision_tower(px, grid, weights, other)
    assert np.array_equal(to_numpy(target.vision_tower(px, grid, weights, config)), first)


@st.composite
def far_position_grids(draw):
    """One long image, 2 or 4 patches high and 300..400 wide (legal: aspect ratio <= 200): column positions up to
    399, where RoPE angles computed in bf16 are off by up to ~0.8 rad while the first ~40 positions of the other
    tower draws hide it."""
    return [(1, draw(st.sampled_from([2, 4])), 2 * draw(st.integers(150, 200)))]


FAR_CONFIG = small_config(
    depth=2, hidden_size=32, num_heads=2, intermediate_size=40, out_hidden_size=16, fullatt_block_indexes=(1,)
)


@pytest.mark.stage("vision_tower")
@S.heavy(0.2)
@given(far_position_grids(), S.seeds)
@example([(1, 4, 320)], 0)
def test_vision_tower_far_positions(stage, target, grid_thw, seed):
    """ROPE-FAR: RoPE angles at positions up to 399 carry no more than float32 error (the spec computes them in
    float32 or wider, whatever the model dtype)."""
    check_tower_matches(stage("vision_tower"), FAR_CONFIG, grid_thw, seed, target_dtype(target))


def tower_with_bf16_angles(dtype: str):
    """Planted: the same-dtype baseline tower whose RoPE angles are computed in bfloat16, as a model cast with
    model.to(bfloat16) does (positions and its inv_freq buffer in bf16, their products rounded to bf16)."""
    from vitspec.reference import rope

    def cos_sin(position_ids, head_dim, theta=10000.0):
        pos = torch.as_tensor(np.asarray(position_ids)).to(torch.bfloat16)
        freqs = torch.as_tensor(rope.inv_freq(head_dim, theta)).to(torch.bfloat16)
        half = torch.cat([pos[:, :1] * freqs, pos[:, 1:] * freqs], dim=1).double().numpy()
        angles = np.concatenate([half, half], axis=1)
        return np.cos(angles), np.sin(angles)

    def tower(pixel_values, grid_thw, weights, config):
        rows = [tuple(int(v) for v in r) for r in np.asarray(grid_thw)]
        with mock.patch.object(rope, "rotary_cos_sin", cos_sin):
            return baseline.vision_tower(pixel_values, rows, weights, config, dtype)

    return tower


def baseline_tower(dtype: str):
    """The same-dtype baseline as a tower target."""

    def tower(pixel_values, grid_thw, weights, config):
        return baseline.vision_tower(
            pixel_values, [tuple(int(v) for v in r) for r in np.asarray(grid_thw)], weights, config, dtype
        )

    return tower


@pytest.mark.negative_control
@pytest.mark.stage("vision_tower")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_far_position_check_rejects_bf16_angles(dtype):
    """ROPE-FAR: a tower whose RoPE angles are computed in bf16 fails the far-position check."""
    grid = [(1, 4, 320)]
    check_tower_matches(baseline_tower(dtype), FAR_CONFIG, grid, 0, dtype)
    with pytest.raises(AssertionError, match="exceeds the tolerance"):
        check_tower_matches(tower_with_bf16_angles(dtype), FAR_CONFIG, grid, 0, dtype)


GRAPH_GRID = [(1, 20, 12), (2, 4, 6)]


def check_replayed_tower(tower, dtype: str) -> None:
    """The tower called again and again on one grid and one weights dict (a captured CUDA graph replays) matches
    the reference for each new pixel_values, not just the first."""
    weights = random_weights(CONFIG, 0)
    g = np.array(GRAPH_GRID, dtype=np.int64)
    for seed in (1, 2, 3):
        px = S.pixel_values(seed, GRAPH_GRID)
        ref = ref_tower.vision_tower(px, g, weights, CONFIG)
        assert_close(
            "vision_tower",
            tower(px, g, weights, CONFIG),
            ref,
            K=K_tower(CONFIG, GRAPH_GRID),
            magnitude=tolerance.row_rms(ref),
            dtype=dtype,
            baseline=lambda px=px: baseline.vision_tower(px, GRAPH_GRID, weights, CONFIG, dtype),
            grid_thw=GRAPH_GRID,
            seed=seed,
            path="fixed grid (CUDA graph)",
        )


@pytest.mark.modules
@pytest.mark.stage("vision_tower")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_cuda_graph_tower_matches_reference(dtype):
    """impl's CUDA-graph tower (vision_tower(..., cuda_graph=True)), checked whenever CUDA is present."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine: the CUDA-graph tower is checked where CUDA is present")
    from vitspec.impl.target import TorchTarget

    target = TorchTarget(device="cuda", dtype=dtype)
    check_replayed_tower(lambda px, g, w, c: target.vision_tower(px, g, w, c, cuda_graph=True), dtype)


def stale_replay_tower(dtype: str):
    """Planted: a fixed-grid tower that replays its first output (inputs not copied into the captured buffer)."""
    from vitspec.impl.target import TorchTarget

    target, first = TorchTarget(dtype=dtype), {}

    def tower(pixel_values, grid_thw, weights, config):
        if "out" not in first:
            first["out"] = target.vision_tower(pixel_values, grid_thw, weights, config, cuda_graph=True)
        return first["out"]

    return tower


@pytest.mark.negative_control
@pytest.mark.stage("vision_tower")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_replay_check_rejects_stale_replay(dtype):
    from vitspec.impl.target import TorchTarget

    target = TorchTarget(dtype=dtype)  # on the CPU the fixed-grid path runs eagerly
    check_replayed_tower(lambda px, g, w, c: target.vision_tower(px, g, w, c, cuda_graph=True), dtype)
    with pytest.raises(AssertionError, match="exceeds the tolerance"):
        check_replayed_tower(stale_replay_tower(dtype), dtype)
