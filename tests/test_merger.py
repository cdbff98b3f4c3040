"""The patch merger (SPEC-NOTES §3): against the reference under the tolerance model, and locality (each output
token depends on exactly the 4 rows of its 2×2 block), with negative controls for both."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from vitspec.reference import merger as ref_merger
from vitspec.spec.configs import small_config
from vitspec.tests import baseline, strategies as S, tolerance
from vitspec.tests.checks import assert_close, fail, target_dtype, to_numpy
from vitspec.tests.problems import merger_problem, tanh_gelu_merger

EPS = 1e-6


def check_merger_matches(merger, x, params, dtype: str, **context) -> None:
    ref = ref_merger.merger(x, params, 2, EPS)
    assert_close(
        "merger",
        merger(x, params, 2, EPS),
        ref,
        K=4 * x.shape[1],
        magnitude=tolerance.row_rms(ref),
        dtype=dtype,
        baseline=lambda: baseline.merger(x, params, 2, EPS, dtype),
        **context,
    )


@pytest.mark.stage("merger")
@given(S.configs(max_depth=2), st.integers(1, 30), S.seeds, st.sampled_from([1.0, 0.01, 10.0]))
def test_merger_matches_reference(stage, target, config, cells, seed, scale):
    x, params = merger_problem(config, seed, cells, scale)
    check_merger_matches(
        stage("merger"),
        x,
        params,
        target_dtype(target),
        cells=cells,
        seed=seed,
        scale=scale,
        hidden=config["hidden_size"],
    )


@pytest.mark.negative_control
@pytest.mark.stage("merger")
def test_merger_tolerance_rejects_tanh_gelu():
    """The float32 tolerance catches the smallest activation bug of the merger (tanh vs erf GELU)."""
    x, params = merger_problem(small_config(), 0, 16)
    check_merger_matches(ref_merger.merger, x, params, "float32")
    with pytest.raises(AssertionError, match="exceeds the tolerance"):
        check_merger_matches(tanh_gelu_merger, x, params, "float32")


def check_merger_locality(merger, x, params, dtype: str) -> None:
    """MERGE-LOCAL: perturbing patch row r changes output token r // 4 and no other one."""
    before = to_numpy(merger(x, params, 2, EPS))
    noise = 4 * tolerance.EPS[dtype]  # other tokens are computed from unchanged rows: they move by rounding at most
    for r in range(x.shape[0]):
        x2 = x.copy()
        x2[r] = -2.0 * x2[r] + 1.0
        after = to_numpy(merger(x2, params, 2, EPS))
        moved = np.max(np.abs(after - before), axis=1) > noise * np.maximum(tolerance.row_rms(before)[:, 0], 1e-30)
        if moved.tolist() != [j == r // 4 for j in range(len(before))]:
            fail(
                "merger",
                f"perturbing patch row {r} moved output tokens {np.flatnonzero(moved).tolist()}, "
                f"expected only token {r // 4}",
                dict(rows=x.shape[0], dtype=dtype),
            )


@pytest.mark.stage("merger")
@given(S.configs(max_depth=2), st.integers(1, 6), S.seeds)
def test_merger_token_depends_on_its_four_patches(stage, target, config, cells, seed):
    x, params = merger_problem(config, seed, cells)
    check_merger_locality(stage("merger"), x, params, target_dtype(target))


def strided_merger(x, params, merge_size=2, eps=1e-6):
    """Rows grouped with stride N/4 instead of 4 consecutive rows."""
    n = x.shape[0] // 4
    return ref_merger.merger(x.reshape(4, n, -1).transpose(1, 0, 2).reshape(x.shape), params, merge_size, eps)


def three_patch_merger(x, params, merge_size=2, eps=1e-6):
    """The last row of each block replaced by the first: one patch ignored."""
    y = x.reshape(-1, 4, x.shape[1]).copy()
    y[:, 3] = y[:, 0]
    return ref_merger.merger(y.reshape(x.shape), params, merge_size, eps)


@pytest.mark.negative_control
@pytest.mark.stage("merger")
@pytest.mark.parametrize("planted", [strided_merger, three_patch_merger], ids=lambda f: f.__name__)
def test_locality_check_rejects(planted):
    x, params = merger_problem(small_config(hidden_size=32), 0, 3)
    check_merger_locality(ref_merger.merger, x, params, "float32")
    with pytest.raises(AssertionError, match="perturbing patch row"):
        check_merger_locality(planted, x, params, "float32")
