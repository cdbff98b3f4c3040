"""Bad input: the target rejects it exactly as the reference does (spec/validate.py).

Every kind of breakage in tests/bad_inputs.py is its own property: the reference and the target must both raise,
raise the same exception class, the class the protocol prescribes (TypeError for a wrong kind of value, ValueError
for a wrong value), with a message that names the argument and states the rule; neither may return a result or
change its inputs. Also: the unbroken calls are accepted (the strategies' negative control), a rejected call
leaves no state behind, the prompt checks of reference/tokens.py, and the command line's one-line errors.
"""

from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pytest
from hypothesis import Phase, given, settings, strategies as st

from vitspec import reference
from vitspec.reference.tokens import check_image_tokens, expand_image_pads
from vitspec.reference.weights import random_weights
from vitspec.spec.configs import IMAGE_PAD_ID, small_config
from vitspec.tests import bad_inputs as B
from vitspec.tests.capability import declared, require_validation
from vitspec.tests.checks import fail, to_numpy

CASES = [
    pytest.param(stage, kind, marks=pytest.mark.stage(stage), id=f"{stage}-{kind.replace(' ', '_')}")
    for stage, kinds in B.KINDS.items()
    for kind in kinds
]


def same(a, b) -> bool:
    """Structural equality of call arguments (arrays by dtype, shape and value, NaN equal to NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and (a == b or (a != a and b != b))


def outcome(fn, args) -> dict:
    """Call fn on a private copy of args: the exception (or the result), the warnings, and whether args changed."""
    mine = copy.deepcopy(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result, error = fn(*mine), None
        except Exception as e:  # noqa: BLE001 - every exception class is a finding here
            result, error = None, e
    found = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return {"error": error, "result": result, "warnings": found, "mutated": not same(mine, args)}


def names_in(message: str, names) -> list[str]:
    """The names that do not appear in the message as whole words."""
    return [n for n in names if not re.search(rf"(?<!\w){re.escape(n)}(?!\w)", message)]


def problems(who: str, got: dict, call) -> list[str]:
    """What is wrong with one target's handling of a bad call."""
    e = got["error"]
    out = [f"{who} changed its input arguments"] if got["mutated"] else []
    if e is None:
        shape = getattr(got["result"], "shape", type(got["result"]).__name__)
        return out + [
            f"{who} ACCEPTED it and returned {shape}; expected {call.error.__name__}"
            + (f" (warnings: {got['warnings']})" if got["warnings"] else "")
        ]
    text = f"{who} raised {type(e).__name__}: {str(e)[:200]}"
    if not isinstance(e, call.error):
        out.append(f"{text} -- expected {call.error.__name__}")
    missing = names_in(str(e), call.names)
    if missing:
        out.append(f"{text} -- the message does not name {missing}")
    if not any(r.lower() in str(e).lower() for r in call.rules):
        out.append(f"{text} -- the message states none of the rule words {list(call.rules)}")
    return out


def in_target_form(target, stage_name: str, args) -> tuple:
    """The call's arguments with the rotary argument (reference angles) in the form the target declares; a broken
    angles array stays broken as (cos, sin) (wrong shape or dtype carries over)."""
    i = B.ROTARY_ARGUMENT.get(stage_name)
    if i is None or declared(target).rotary == "angles":
        return args
    angles = args[i]
    if not isinstance(angles, np.ndarray) or angles.ndim != 2:
        return args[:i] + ((angles, angles),) + args[i + 1 :]
    full = np.concatenate([angles, angles], axis=1)
    return args[:i] + ((np.cos(full), np.sin(full)),) + args[i + 1 :]


@pytest.fixture(scope="module")
def validating(target):
    """The bad-input checks count only for a target that declares validates_inputs=True."""
    require_validation(target)


@pytest.mark.parametrize("stage_name,kind", CASES)
@settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])  # the failure names its breakage: no shrinking
@given(data=st.data())
def test_bad_input_rejected_like_the_reference(target, validating, stage_name, kind, data):
    """Counts only for a target that declares validates_inputs=True (else NOT COVERED, by the fixture)."""
    call = data.draw(B.bad_call(stage_name, kind))
    ref = outcome(getattr(reference.TARGET, stage_name), call.args)
    got = outcome(getattr(target, stage_name), in_target_form(target, stage_name, call.args))
    lines = problems("reference", ref, call) + problems("target", got, call)
    if ref["error"] is not None and got["error"] is not None and type(ref["error"]) is not type(got["error"]):
        lines.append(
            f"different exception classes: reference {type(ref['error']).__name__}, "
            f"target {type(got['error']).__name__}"
        )
    if lines:
        fail(
            stage_name,
            f"bad input ({kind}: {call.detail}) is not rejected as the protocol prescribes",
            {"kind": kind, "detail": call.detail},
            lines,
        )


@pytest.mark.negative_control
@pytest.mark.parametrize("stage_name", list(B.KINDS))
@given(data=st.data())
def test_unbroken_calls_are_accepted(stage, target, stage_name, data):
    """The strategies break valid calls: without the breakage, both targets return a result."""
    call = data.draw(B.bad_call(stage_name, None))
    for who, fn, args in (
        ("reference", getattr(reference.TARGET, stage_name), call.args),
        ("target", stage(stage_name), in_target_form(target, stage_name, call.args)),
    ):
        got = outcome(fn, args)
        assert got["error"] is None, f"{who} rejected a valid {stage_name} call: {got['error']!r}"
        assert not got["mutated"], f"{who} changed the arguments of a valid {stage_name} call"


@pytest.mark.stage("vision_tower")
@pytest.mark.parametrize("bad", ["shape", "missing", "dtype"])
def test_rejected_call_leaves_no_state(target, bad, seed=20240607):
    """A weights dict edited in place into a bad one and back: the tower gives the same result before and after.
    Three fixed cases, not a property: the inputs' values do not matter here, and a port that accepts a bad
    checkpoint (as vLLM does, docs/repro/vllm_partial_stacked_weights.py) would otherwise pay for a shrink."""
    config = small_config(2, 32, 2, 40, 16, (1,))
    weights, grid = random_weights(config, seed), np.array([[1, 4, 10]])
    pixels = np.random.default_rng(seed).uniform(-1.8, 2.2, (40, 1176))
    before = to_numpy(target.vision_tower(pixels, grid, weights, config))
    key = "blocks.1.mlp.up_proj.weight"
    kept = weights[key]
    if bad == "missing":
        del weights[key]
    else:
        weights[key] = kept[:, :-1] if bad == "shape" else kept.astype(np.int64)
    rejected = outcome(target.vision_tower, (pixels, grid, weights, config))["error"] is not None
    weights[key] = kept
    after = to_numpy(target.vision_tower(pixels, grid, weights, config))
    assert np.array_equal(before, after), f"the result changed after a call with the weights' {key} {bad}"
    assert rejected or bad == "dtype", f"weights with {key} {bad} were accepted"


# --- the prompt checks (reference/tokens.py: no target stage) -------------------------------------------------


@pytest.mark.conformance
@given(
    grid=st.lists(st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4)), min_size=1, max_size=3),
    pads=st.integers(0, 5),
    text=st.lists(st.integers(0, 151000), max_size=5),
    data=st.data(),
)
def test_prompt_with_other_pad_count_is_rejected(grid, pads, text, data):
    grid = [(t, 2 * h, 2 * w) for t, h, w in grid]
    ids = data.draw(st.permutations(text + [IMAGE_PAD_ID] * pads))
    if pads == len(grid):
        expanded = expand_image_pads(ids, grid)
        assert check_image_tokens(expanded, sum(t * h * w // 4 for t, h, w in grid)) == len(expanded) - len(text)
        return
    with pytest.raises(ValueError, match=r"input_ids .*one image pad id") as e:
        expand_image_pads(ids, grid)
    assert f"found {pads} for {len(grid)} images" in str(e.value)
    features = data.draw(st.integers(0, 400).filter(lambda n: n != pads))
    with pytest.raises(ValueError, match="Image features and image tokens do not match") as e:
        check_image_tokens(ids, features)
    assert f"holds {pads} image pad" in str(e.value) and f"returned {features} rows" in str(e.value)


@pytest.mark.conformance
@pytest.mark.parametrize(
    "fn",
    [lambda ids: expand_image_pads(ids, [[1, 2, 2]]), lambda ids: check_image_tokens(ids, 1)],
    ids=["expand_image_pads", "check_image_tokens"],
)
@pytest.mark.parametrize(
    "token,error",
    [
        (IMAGE_PAD_ID + 0.5, TypeError),
        ("x", TypeError),
        (None, TypeError),
        (-1, ValueError),
        (float(IMAGE_PAD_ID), TypeError),
    ],
)
def test_prompt_token_ids_must_be_non_negative_integers(fn, token, error):
    """A token id that is not a non-negative integer is named (input_ids[i]), never truncated or skipped."""
    with pytest.raises(error, match=re.escape("input_ids[2]")):
        fn([1, IMAGE_PAD_ID, token])


@pytest.mark.conformance
@pytest.mark.parametrize("bad", [-1, 2.0, "3", None])
def test_check_image_tokens_names_num_features(bad):
    with pytest.raises((TypeError, ValueError), match="num_features"):
        check_image_tokens([IMAGE_PAD_ID], bad)
