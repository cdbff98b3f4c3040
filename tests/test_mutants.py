"""The suite's strength: every planted-bug mutant (vitspec/mutants/catalogue.py) must be killed by the suite.

test_every_mutant_is_killed runs `vitspec mutants` (the mutation profile, a pytest process per mutant, impl
unmutated as the control) and names the survivors. The fast tests make that verdict meaningful: each mutant
plants, changes the output of one of its stages on a witness input (it is not an equivalent mutant), and
leaves impl exactly as it was afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vitspec.mutants import gate
from vitspec.mutants.catalogue import BY_NAME, CATALOGUE
from vitspec.reference import rope as ref_rope
from vitspec.reference.weights import random_weights
from vitspec.spec.configs import small_config
from vitspec.spec.protocol import STAGE_NAMES, subdict
from vitspec.tests.checks import RUN, to_numpy

CONFIG = small_config(
    depth=2, hidden_size=32, num_heads=2, intermediate_size=40, out_hidden_size=16, fullatt_block_indexes=(1,)
)
WEIGHTS = random_weights(CONFIG, seed=0)
GRIDS = [(2, 8, 12), (1, 20, 12)]  # a video, then a non-square image larger than one window
ROOT = Path(__file__).resolve().parent.parent
EPS = {"float32": 2.0**-23, "bfloat16": 2.0**-7, "float16": 2.0**-10}


def _rng(seed: int = 0) -> np.random.Generator:
    """A seeded generator for witness inputs."""
    return np.random.default_rng(seed)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A random uint8 (h, w, 3) image."""
    return _rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _block_inputs(prefix: str = "blocks.0"):
    """(x, params, cu_seqlens, angles) of one block (or its attention module) over two 32-patch windows of a
    (1, 8, 8) grid; the angles in the form impl takes by default."""
    N = 64  # grid (1, 8, 8): two windows of 32 patches
    angles = ref_rope.rotary_angles(ref_rope.rotary_position_ids([(1, 8, 8)]), 16)
    return 0.5 * _rng(1).standard_normal((N, 32)), subdict(WEIGHTS, prefix), np.array([0, 32, 64]), angles


def _rope_inputs():
    """(positions up to 600, x, angles): angles large enough for bf16 rounding to show."""
    pos = _rng(2).integers(0, 600, (50, 2))
    return pos, _rng(3).standard_normal((50, 2, 16)), ref_rope.rotary_angles(pos, 16)


WITNESS = {  # stage -> f(target): its output on inputs where the spec's bug classes show
    "smart_resize": lambda t: [
        t.smart_resize(*a)
        for a in [
            (70, 280),
            (126, 98),
            (300, 40),
            (42, 1000, 28, 3136, 40000),
            (15, 3000, 28, 3136, 80000),
            (20, 30),
            (1, 200),
        ]
    ],
    "resize": lambda t: [t.resize(_image(93, 13), 31, 7), t.resize(_image(50, 60), 20, 70)],
    "preprocess": lambda t: t.preprocess(
        [
            _image(70, 98),
            np.stack([_image(60, 50, s) for s in (1, 2, 3)]),
            np.stack([_image(30, 40, s) for s in (4, 5)]),
        ]
    ),
    "patchify": lambda t: t.patchify(_rng(4).standard_normal((2, 3, 56, 84))),
    "patch_embed": lambda t: t.patch_embed(_rng(5).standard_normal((8, 1176)), WEIGHTS["patch_embed.proj.weight"]),
    "rotary_position_ids": lambda t: t.rotary_position_ids(GRIDS),
    "rotary_angles": lambda t: t.rotary_angles(_rope_inputs()[0], 16),
    "rotary_cos_sin": lambda t: t.rotary_cos_sin(_rope_inputs()[0], 16),
    "apply_rotary": lambda t: t.apply_rotary(*_rope_inputs()[1:]),
    "window_index": lambda t: t.window_index([(2, 16, 16), (1, 40, 36), (1, 12, 24)]),
    "cu_seqlens": lambda t: t.cu_seqlens([(2, 4, 4), (1, 4, 6)]),
    "attention": lambda t: t.attention(*_rng(6).standard_normal((3, 20, 2, 8)), np.array([0, 7, 20])),
    "attention_module": lambda t: t.attention_module(*_block_inputs("blocks.0.attn"), CONFIG["num_heads"]),
    "rms_norm": lambda t: t.rms_norm(300 * _rng(7).standard_normal((4, 32)), WEIGHTS["blocks.0.norm1.weight"]),
    "mlp": lambda t: t.mlp(_rng(8).standard_normal((6, 32)), subdict(WEIGHTS, "blocks.0.mlp")),
    "vision_block": lambda t: t.vision_block(*_block_inputs(), CONFIG["num_heads"]),
    "merger": lambda t: t.merger(_rng(9).standard_normal((16, 32)), subdict(WEIGHTS, "merger")),
    "vision_tower": lambda t: t.vision_tower(
        _rng(10).uniform(-1.8, 2.2, (sum(a * b * c for a, b, c in GRIDS), 1176)), GRIDS, WEIGHTS, CONFIG
    ),
    "num_image_tokens": lambda t: t.num_image_tokens(GRIDS),
}


def _flat(out) -> list[np.ndarray]:
    """A stage output (tensor, array, tuple or list of them, ints) as a list of float64 or int arrays."""
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _flat(o)]
    return [to_numpy(out) if hasattr(out, "shape") else np.asarray(out)]


def differs(got, base, dtype: str) -> bool:
    """Outputs differ in shape, in an integer, or by more than 16 eps of the dtype (NaN and inf included)."""
    got, base = _flat(got), _flat(base)
    if len(got) != len(base):
        return True
    for a, b in zip(got, base):
        if a.shape != b.shape:
            return True
        if not np.issubdtype(b.dtype, np.floating):
            if not np.array_equal(a, b):
                return True
        elif not np.all(np.abs(a - b) <= 16 * EPS[dtype] * np.maximum(1.0, np.abs(b))):
            return True
    return False


def _witness(target, stage: str):
    """The stage's output on its witness inputs, or 'raised <Error>'."""
    try:
        return WITNESS[stage](target)
    except Exception as e:  # a bug that makes the stage raise is visible too
        return f"raised {type(e).__name__}"


def changed(mutant, base, stage: str) -> bool:
    """The mutant's output on the stage's witness differs from impl's (raising where impl does not counts)."""
    got, ref = _witness(mutant, stage), _witness(base, stage)
    if isinstance(got, str) or isinstance(ref, str):
        return got != ref
    if mutant.mutant.dtype in ("bfloat16", "float16"):  # a precision bug moves bits, often by less than 16 eps
        got, ref = _flat(got), _flat(ref)
        return len(got) != len(ref) or any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(got, ref))
    return differs(got, ref, mutant.dtype)


def test_catalogue_covers_every_stage_and_is_large_enough():
    """At least 30 mutants, every protocol stage touched by one, each fully described."""
    covered = {s for m in CATALOGUE for s in m.stages}
    assert len(CATALOGUE) >= 30
    assert covered == set(STAGE_NAMES), f"stages without a mutant: {sorted(set(STAGE_NAMES) - covered)}"
    assert set(WITNESS) == set(STAGE_NAMES)
    for m in CATALOGUE:
        assert m.name.isidentifier() and m.bug_class and m.description and m.plants, m.name


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_mutant_changes_one_of_its_stages(name):
    """Each mutant plants and is not equivalent: some stage it claims gives another output on the witness input."""
    from vitspec.mutants import catalogue as mutant_catalogue

    mutant = getattr(mutant_catalogue, name)
    base = mutant.base.with_options()  # impl unmutated, same dtype
    assert any(changed(mutant, base, s) for s in mutant.mutant.stages), (
        f"{name} changes none of its stages {mutant.mutant.stages} on the witness inputs"
    )


def test_planting_leaves_impl_unchanged():
    """After every mutant has been planted and run, impl gives bit-identical outputs on every witness."""
    from vitspec.impl.target import TorchTarget
    from vitspec.mutants import catalogue as mutant_catalogue

    clean = TorchTarget()
    before = {s: _flat(_witness(clean, s)) for s in STAGE_NAMES}
    for m in CATALOGUE:
        if m.dtype is None:
            _witness(getattr(mutant_catalogue, m.name), m.stages[0])
    for s in STAGE_NAMES:
        after = _flat(_witness(clean, s))
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(after, before[s])), s


def test_planting_a_vanished_site_is_an_error():
    """An Edit whose text left impl raises PlantError instead of planting nothing."""
    from vitspec.mutants.plant import Mutant, PlantError, edit

    ghost = Mutant(
        "ghost",
        ("attention",),
        "none",
        "an edit whose text is not in impl",
        (edit("vitspec.impl.attention.attention", "text that is not there", "x"),),
    )
    with pytest.raises(PlantError, match="occurs 0 times"):
        with ghost.planted():
            pass


@pytest.mark.skipif(
    RUN["target"] != "vitspec.impl:TARGET" or os.environ.get("VITSPEC_SKIP_MUTANTS") == "1",
    reason="the mutant gate measures the suite, once, with vitspec.impl:TARGET",
)
def test_every_mutant_is_killed(tmp_path):
    """`vitspec mutants` with the mutation profile at float32 and bfloat16 (VITSPEC_MUTANT_DTYPES=all adds the
    float16 sweep), mutants of integer-only stages at float32 only (to keep CI short; `vitspec mutants` runs them at
    every dtype): the controls pass and no mutant survives at any dtype."""
    report = tmp_path / "mutants.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    dtypes = os.environ.get("VITSPEC_MUTANT_DTYPES", "float32,bfloat16")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vitspec.cli",
            "mutants",
            "--profile",
            "mutation",
            "--output",
            str(report),
            "--dtype",
            dtypes,
            "--index-float32-only",
            "-j",
            str(os.cpu_count() or 1),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert report.exists(), f"vitspec mutants wrote no report (exit {done.returncode}): {done.stderr[-2000:]}"
    result = json.loads(report.read_text())
    failed_controls = [f"{c['name']}: {c['failed_tests'][:3]}" for c in result["controls"] if not c["passed"]]
    assert not failed_controls, (
        f"impl unmutated fails tests that killed mutants, those kills mean nothing: {failed_controls}"
    )
    survivors = [f"{m['name']} ({m['status']}: {m['detail']})" for m in result["mutants"] if not m["killed"]]
    assert not survivors, f"killed {result['killed']}/{result['total']}; not killed: " + "; ".join(survivors)
    last = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0 and last == f"killed {result['total']}/{result['total']}", (done.returncode, last)
    ran = {m["dtype"] for m in result["mutants"]}
    assert ran == set(gate.parse_dtypes(dtypes)), f"mutants ran at {sorted(ran)}, asked for {dtypes}"
    expected = {j.name for j in gate.plan(CATALOGUE, gate.parse_dtypes(dtypes), index_float32_only=True)}
    assert {m["name"] for m in result["mutants"]} == expected


def test_gate_runs_every_mutant_at_float32_and_bfloat16_and_float_stages_at_float16():
    """The plan: each mutant at float32 and bfloat16, at float16 when a stage of it does float arithmetic; a mutant
    with its own dtype at that dtype only; --dtype selects."""
    jobs = gate.plan(CATALOGUE, gate.DTYPES)
    for m in CATALOGUE:
        ran = sorted(j.dtype for j in jobs if j.mutant == m.name)
        assert ran, f"{m.name} never runs"
        if m.dtype:
            assert ran == [m.dtype], (m.name, ran)
        elif m.below_low_precision:
            assert ran == ["float32"], (m.name, ran)
        else:
            assert {"float32", "bfloat16"} <= set(ran), (m.name, ran)
    assert any(j.dtype == "float16" for j in jobs) and not any(
        j.dtype == "float16"
        and BY_NAME[j.mutant].dtype is None
        and set(BY_NAME[j.mutant].stages)
        <= {"window_index", "cu_seqlens", "smart_resize", "num_image_tokens", "rotary_position_ids"}
        for j in jobs
    )
    assert {j.dtype for j in gate.plan(CATALOGUE, gate.parse_dtypes("bfloat16"))} == {"bfloat16"}
    with pytest.raises(gate.UsageError):
        gate.parse_dtypes("float8")


def test_protocol_records_name_the_catalogue_mutants():
    """spec/protocol.py's Stage.mutants lists exactly the catalogue mutants whose stages include that stage."""
    from vitspec.spec.protocol import STAGES

    wrong = {s.name: sorted(set(s.mutants) ^ {m.name for m in CATALOGUE if s.name in m.stages}) for s in STAGES}
    wrong = {k: v for k, v in wrong.items() if v}
    assert not wrong, f"Stage.mutants differs from the catalogue (names in only one of them): {wrong}"
