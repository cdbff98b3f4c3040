"""Comparison helpers shared by the tests: exact index checks, the tolerance rule, failure messages with a repro."""

from __future__ import annotations

import os
import shlex
import sys

import numpy as np

from vitspec.tests import tolerance

# Filled by vitspec.tests.plugin.pytest_configure: the options of this run, used in repro commands.
RUN: dict = {
    "target": "vitspec.impl:TARGET",
    "device": None,
    "dtype": None,
    "profile": "ci",
    "max_examples": None,
    "seed": None,
    "target_dtype": "float64",
    "target_name": "?",
}
# Filled by the plugin for the running test: "node" (the test file's absolute path::test id), "item" (the pytest
# item, for user_properties), "called" (the stages whose target method this test called: the plugin's recorder and
# exercised() add to it), "helpers" (the helper stages the test took from the reference because the target lacks
# them: the stage fixture's or_reference adds to it).
CURRENT: dict = {"node": None, "item": None, "called": set(), "helpers": set()}


class StageMismatch(AssertionError):
    """A check found the target's output for `stage` wrong (the report marks FAIL on that stage's row only)."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage

    def __reduce__(self):
        return StageMismatch, (self.stage, str(self))


def exercised(stage: str) -> None:
    """Count the running test as exercising the target's `stage` (for calls the recorder cannot see, such as the
    target's method run in a child process)."""
    CURRENT["called"].add(stage)


def record_difference(stage: str, form: str, detail: str) -> None:
    """Record, on the running test's report, that the target gave an equivalent form the spec allows
    (spec/differences.py EQUIVALENT_FORMS) rather than the canonical one: a user_properties entry
    ("vitspec_difference", "stage: form: detail") that the report lists per stage."""
    entry = ("vitspec_difference", f"{stage}: {form}: {detail}")
    item = CURRENT.get("item")
    if item is not None and entry not in item.user_properties:
        item.user_properties.append(entry)


def canonical_windows(grid_thw, cu):
    """cu_window_seqlens with repeated boundaries (zero-length windows) dropped: the canonical form. A target that
    keeps them gives an equivalent form (EQUIVALENT_FORMS "empty windows kept"), recorded on the test's report."""
    cu = to_numpy(cu)
    if cu.ndim != 1 or cu.size == 0:
        return cu
    keep = np.concatenate([[True], np.diff(cu) != 0])
    if not keep.all():
        record_difference(
            "window_index",
            "empty windows kept",
            f"grid_thw {list(map(list, grid_thw))}: {int(np.sum(~keep))} zero-length windows",
        )
    return cu[keep]


def to_numpy(x) -> np.ndarray:
    """A target output (NumPy array or torch tensor, any device) as NumPy: floats as float64."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x
        x = x.numpy()
    x = np.asarray(x)
    return x.astype(np.float64) if np.issubdtype(x.dtype, np.floating) else x


def target_dtype(target) -> str:
    """The compute dtype a target declares (float64 when it declares none)."""
    return str(getattr(target, "dtype", "float64")).removeprefix("torch.")


def repro_command() -> str:
    """One command that reruns the current test with this run's options (Hypothesis replays the example)."""
    node = CURRENT.get("node") or os.environ.get("PYTEST_CURRENT_TEST", "<test id>").rsplit(" ", 1)[0]
    parts = [sys.executable, "-m", "pytest", node, "--target", RUN["target"]]
    for opt in ("device", "dtype", "max_examples"):
        if RUN.get(opt) is not None:
            parts += [f"--{opt.replace('_', '-')}", str(RUN[opt])]
    parts += ["--profile", RUN["profile"]]
    if RUN.get("seed") is not None:
        parts += [f"--hypothesis-seed={RUN['seed']}"]
    return " ".join(shlex.quote(p) for p in parts)


def _context(context: dict) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in context.items())


def _short(v) -> str:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    text = str(v)
    return text if len(text) <= 120 else text[:117] + "..."


def fail(stage: str, what: str, context: dict, lines=()) -> None:
    """Raise a StageMismatch (an AssertionError) naming the stage, the inputs, the details and one command that
    reproduces."""
    msg = [
        f"[{stage}] {what}",
        f"  inputs: {_context(context)}",
        *[f"  {line}" for line in lines],
        f"  reproduce: {repro_command()}",
    ]
    raise StageMismatch(stage, "\n".join(msg))


def assert_index_equal(stage: str, got, expected, **context) -> None:
    """Index outputs must equal the reference exactly: integer dtype, same shape, same values."""
    got, expected = to_numpy(got), np.asarray(expected)
    if not np.issubdtype(got.dtype, np.integer):
        fail(stage, f"must return integers, got dtype {got.dtype}", context)
    if got.shape != expected.shape:
        fail(stage, f"shape {got.shape} differs from the reference's {expected.shape}", context)
    bad = np.flatnonzero(got.reshape(-1) != expected.reshape(-1))
    if bad.size:
        i = int(bad[0])
        fail(
            stage,
            f"{bad.size} of {expected.size} entries differ from the reference",
            context,
            [
                f"first at flat index {i}: got {got.reshape(-1)[i]}, expected {expected.reshape(-1)[i]}",
                f"got head      {got.reshape(-1)[max(0, i - 4) : i + 8].tolist()}",
                f"expected head {expected.reshape(-1)[max(0, i - 4) : i + 8].tolist()}",
            ],
        )


def worst(normalized: np.ndarray, got: np.ndarray, ref: np.ndarray) -> tuple:
    """(normalized error, index, absolute error, relative error) at the worst element."""
    flat = int(np.argmax(normalized))
    idx = np.unravel_index(flat, normalized.shape)
    abs_err = abs(float(got[idx]) - float(ref[idx]))
    rel = abs_err / abs(float(ref[idx])) if ref[idx] != 0 else float("inf")
    return float(normalized[idx]), tuple(int(i) for i in idx), abs_err, rel


def assert_close(stage: str, got, ref, *, K: int, magnitude, dtype: str, baseline=None, **context) -> None:
    """Float outputs against the float64 reference under the tolerance model (tests/tolerance.py).

    baseline: a zero-argument function returning the same-dtype baseline's output (needed for bf16 / fp16).
    """
    got, ref = to_numpy(got), np.asarray(ref, dtype=np.float64)
    context = {**context, "dtype": dtype}
    if got.shape != ref.shape:
        fail(stage, f"shape {got.shape} differs from the reference's {ref.shape}", context)
    norm = tolerance.normalized_error(got, ref, K, magnitude, dtype)
    base_err = None
    if dtype in tolerance.LOW_PRECISION:
        base_err = float(np.max(tolerance.normalized_error(baseline(), ref, K, magnitude, dtype)))
    limit = tolerance.allowed(stage, dtype, K, base_err)
    e, idx, abs_err, rel = worst(norm, got, ref)
    if not e <= limit:
        tol = tolerance.TABLE[stage]
        rule = (
            f"{tol.factor} x max(same-dtype baseline {base_err:.3g}, 1/sqrt(K))"
            if base_err is not None
            else f"c = {tol.c}"
        )
        fail(
            stage,
            f"error {e:.3g} x eps*sqrt(K)*magnitude exceeds the tolerance {limit:.3g} ({rule})",
            context,
            [
                f"worst element {idx}: got {float(got[idx]):.9g}, reference {float(ref[idx]):.9g}",
                f"max abs error {abs_err:.3e}, relative error there {rel:.3e}; K = {K}, eps({dtype}) = "
                f"{tolerance.EPS[dtype]:.3e}, magnitude there {np.broadcast_to(magnitude, norm.shape)[idx]:.3e}",
                f"{int(np.sum(norm > limit))} of {norm.size} elements exceed it",
            ],
        )


def assert_unchanged(stage: str, after, before, keep, *, K: int, magnitude, dtype: str, what: str, **context) -> None:
    """Rows selected by `keep` must not move when other inputs change (within the stage's float noise)."""
    after, before = to_numpy(after), to_numpy(before)
    keep = np.asarray(keep, dtype=bool)
    mag = np.broadcast_to(np.asarray(magnitude, dtype=np.float64), before.shape)
    norm = tolerance.normalized_error(after[keep], before[keep], K, mag[keep], dtype)
    limit = tolerance.TABLE[stage].c
    if norm.size and not float(np.max(norm)) <= limit:
        rows = np.flatnonzero(keep)
        e, idx, abs_err, _ = worst(norm, after[keep], before[keep])
        fail(
            stage,
            f"{what}: output row {int(rows[idx[0]])} changed by {abs_err:.3e} "
            f"({e:.3g} x eps*sqrt(K)*magnitude, allowed {limit})",
            context,
        )
