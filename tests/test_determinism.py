"""Determinism: the same inputs give bit-identical outputs on the CPU, call after call (prepared-weight caches hit
or missed) and process after process; and batch composition moves an image's result by no more than the tolerance
model's float noise for the tower (tests/tolerance.py, "vision_tower": c x eps(dtype) x sqrt(K) x row rms).

Run as ``python -m vitspec.tests.test_determinism SPEC DTYPE`` the module prints the SHA-256 of one fixed tower output.
"""

from __future__ import annotations

import copy
import hashlib
import sys

import numpy as np
import pytest
from hypothesis import event, given, strategies as st

from vitspec.reference.weights import random_weights
from vitspec.spec.configs import small_config
from vitspec.tests import strategies as S, subproc, tolerance
from vitspec.tests.checks import RUN, assert_unchanged, exercised, fail, target_dtype, to_numpy

FIXED_CONFIG = small_config(4, 64, 4, 96, 48, (1, 3))
FIXED_GRID = [[1, 12, 20], [2, 8, 6], [1, 2, 30]]  # windows with partial edges, a video, a 1 x n merged grid


def digest(x) -> str:
    """SHA-256 of an output's dtype, shape and bytes (float outputs widened exactly to float64)."""
    a = np.ascontiguousarray(to_numpy(x))
    return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()


def fixed_output(target, seed: int = 20240607):
    weights = random_weights(FIXED_CONFIG, seed)
    pixels = S.pixel_values(seed, FIXED_GRID)
    return target.vision_tower(pixels, np.array(FIXED_GRID), weights, FIXED_CONFIG)


def require_cpu(target):
    if not str(getattr(target, "device", "cpu")).startswith("cpu"):
        pytest.skip("bit-identical results are required on the CPU only (GPU kernels may pick their algorithms)")


def tower_K(config, grid) -> int:
    longest = max(h * w for _, h, w in grid)
    return config["depth"] * max(1176, 4 * config["hidden_size"], config["intermediate_size"], longest)


@pytest.mark.stage("vision_tower")
@given(config=S.configs(max_depth=2), grid=S.grid_lists(max_images=2, max_patches=300), seed=S.seeds)
def test_tower_bit_identical_call_after_call(target, config, grid, seed):
    """Three calls: the weights dict, a deep copy of it (no prepared-weights cache hit), the original again."""
    require_cpu(target)
    weights, pixels = random_weights(config, seed % 1000), S.pixel_values(seed, grid)
    outputs = [
        target.vision_tower(pixels.copy(), np.array(grid), w, dict(config))
        for w in (weights, copy.deepcopy(weights), weights)
    ]
    hashes = [digest(o) for o in outputs]
    if len(set(hashes)) != 1:
        fail(
            "vision_tower",
            "the same inputs gave different bits",
            {"grid": grid, "seed": seed},
            [
                f"digests {[h[:12] for h in hashes]}",
                f"max |diff| {np.max(np.abs(to_numpy(outputs[0]) - to_numpy(outputs[1]))):.3g}",
            ],
        )


@pytest.mark.stage("preprocess")
@given(seed=S.seeds, sizes=st.lists(st.tuples(st.integers(1, 150), st.integers(1, 150)), min_size=1, max_size=3))
def test_preprocess_bit_identical_call_after_call(target, seed, sizes):
    require_cpu(target)
    images = [S.rng(seed + i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i, (h, w) in enumerate(sizes)]
    first, again = target.preprocess(images), target.preprocess([im.copy() for im in images])
    assert [digest(a) for a in first] == [digest(a) for a in again], f"preprocess of {sizes} changed between calls"


@pytest.mark.stage("vision_tower")
def test_tower_bit_identical_across_processes(target):
    """A fresh interpreter (its own hash seed, allocator and thread pools) and this one: one digest. One child,
    not more: a port's import is most of its cost (vLLM's is about 20 s of CPU)."""
    require_cpu(target)
    check_across_processes(target, RUN["target"], RUN.get("dtype") or "")
    exercised("vision_tower")  # the child called the target's vision_tower


def check_across_processes(target, spec: str, dtype: str) -> None:
    child = subproc.popen(subproc.python("-m", "vitspec.tests.test_determinism", spec, dtype))
    mine = digest(fixed_output(target))  # while the child starts
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-2000:]
    digests = [out.strip().splitlines()[-1], mine]
    assert len(set(digests)) == 1, f"tower output digests differ between processes: {digests}"


@pytest.mark.negative_control
def test_process_check_catches_a_per_process_result():
    """A tower whose last bits follow the process's string-hash seed passes call after call and fails here."""
    from vitspec.tests.children.per_process_tower import TARGET as planted

    assert digest(fixed_output(planted)) == digest(fixed_output(planted))
    with pytest.raises(AssertionError, match="digests differ between processes"):
        check_across_processes(planted, "vitspec.tests.children.per_process_tower:TARGET", "")


@pytest.mark.stage("vision_tower")
@given(config=S.configs(max_depth=2), grid=S.grid_lists(max_images=3, max_patches=400), seed=S.seeds, data=st.data())
def test_batch_composition_moves_an_image_within_tolerance(target, config, grid, seed, data):
    """Each image of a batch, in a shuffled batch and alone: its rows agree within the tower's float noise."""
    weights, pixels = random_weights(config, seed % 1000), S.pixel_values(seed, grid)
    sizes = [t * h * w for t, h, w in grid]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    order = data.draw(st.permutations(range(len(grid))))
    batch = to_numpy(target.vision_tower(pixels, np.array(grid), weights, config))
    shuffled = to_numpy(
        target.vision_tower(
            np.concatenate([pixels[starts[i] : starts[i + 1]] for i in order]),
            np.array([grid[i] for i in order]),
            weights,
            config,
        )
    )
    out_starts = starts // 4
    shuffled_starts = np.concatenate([[0], np.cumsum([sizes[i] // 4 for i in order])])
    dtype, K = target_dtype(target), tower_K(config, grid)
    for pos, i in enumerate(order):
        mine = batch[out_starts[i] : out_starts[i + 1]]
        alone = to_numpy(target.vision_tower(pixels[starts[i] : starts[i + 1]], np.array([grid[i]]), weights, config))
        moved = to_numpy(shuffled[shuffled_starts[pos] : shuffled_starts[pos + 1]])
        event("batch rows bit-identical to alone" if np.array_equal(mine, alone) else "batch rows differ from alone")
        for other, what in ((alone, "the image alone"), (moved, f"the batch in order {list(order)}")):
            assert_unchanged(
                "vision_tower",
                other,
                mine,
                np.ones(len(mine), bool),
                K=K,
                magnitude=tolerance.row_rms(mine),
                dtype=dtype,
                what=f"image {i} of {grid} vs {what}",
                grid=grid,
                seed=seed,
            )


@pytest.mark.negative_control
def test_batch_check_catches_a_leak():
    """A tower that adds the batch mean to every row (requests leaking into each other) fails the batch check."""
    config, grid = small_config(2, 32, 2, 40, 16, (1,)), [[1, 4, 6], [1, 8, 8]]
    weights, pixels = random_weights(config, 1), S.pixel_values(1, grid)
    from vitspec.reference import TARGET

    leak = lambda p, g, w, c: TARGET.vision_tower(p, g, w, c) + 1e-4 * len(p)  # noqa: E731
    batch = leak(pixels, np.array(grid), weights, config)[:6]
    alone = leak(pixels[:24], np.array(grid[:1]), weights, config)
    with pytest.raises(AssertionError, match="changed by"):
        assert_unchanged(
            "vision_tower",
            alone,
            batch,
            np.ones(6, bool),
            K=tower_K(config, grid),
            magnitude=tolerance.row_rms(batch),
            dtype="float32",
            what="leak",
        )


if __name__ == "__main__":
    from vitspec.spec.protocol import load_target

    spec, dtype = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    t = load_target(spec)
    print(digest(fixed_output(t.with_options(dtype=dtype) if dtype else t)))
