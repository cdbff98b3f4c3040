"""The protocol records (spec/protocol.py): every field names something that exists, and target capabilities are
read with their defaults and checked (an unknown key or value is a usage error naming the key and allowed values)."""

from __future__ import annotations

import pytest

from vitspec import impl, reference
from vitspec.spec.differences import EQUIVALENT_FORMS
from vitspec.spec.protocol import CAPABILITY_KEYS, ROTARY_STAGES, STAGE_NAMES, STAGES, Capabilities, capabilities, stage
from vitspec.tests import bad_inputs, tolerance

pytestmark = pytest.mark.conformance


@pytest.mark.parametrize("record", STAGES, ids=lambda s: s.name)
def test_stage_record_names_what_exists(record):
    fn = record.reference_function()
    assert callable(fn) and record.reference.startswith(f"vitspec.reference.{record.module}:"), record.reference
    assert record.tolerance is None or record.tolerance in tolerance.TABLE, record.tolerance
    assert record.bad_inputs is None or record.bad_inputs in bad_inputs.KINDS, record.bad_inputs
    assert set(record.capabilities) <= set(CAPABILITY_KEYS), record.capabilities
    assert set(record.forms) <= {f.name for f in EQUIVALENT_FORMS if f.stage == record.name}, record.forms
    assert len(set(record.mutants)) == len(record.mutants)


def test_every_table_row_belongs_to_a_stage():
    assert {k for k in tolerance.TABLE if k in STAGE_NAMES} == {s.tolerance for s in STAGES if s.tolerance}
    assert set(bad_inputs.KINDS) == {s.bad_inputs for s in STAGES if s.bad_inputs}
    assert {f.stage for f in EQUIVALENT_FORMS} <= set(STAGE_NAMES)


def test_new_stages_and_the_optional_kernel():
    assert stage("attention").optional and not stage("attention_module").optional
    assert ROTARY_STAGES == ("apply_rotary", "attention_module", "vision_block")
    assert STAGE_NAMES.index("rotary_angles") < STAGE_NAMES.index("rotary_cos_sin")


class Declares:
    def __init__(self, capabilities):
        self.capabilities = capabilities


def test_defaults_and_the_package_targets():
    assert capabilities(object()) == Capabilities()
    assert Capabilities().rotary == "cos_sin" and Capabilities().video_rule == "per_frame"
    assert not Capabilities().validates_inputs and Capabilities().media == ("image", "video")
    for target in (reference.TARGET, impl.TARGET):
        caps = capabilities(target)
        assert caps.validates_inputs and caps.rotary == "angles", (target, caps)
    assert capabilities(impl.TARGET.with_options(rotary="cos_sin")).rotary == "cos_sin"
    with pytest.raises(ValueError, match="rotary must be one of"):
        impl.TARGET.with_options(rotary="complex")


def test_declaration_is_normalized():
    caps = capabilities(
        Declares(
            {
                "media": ["video", "image"],
                "smart_resize_variants": ("qvu",),
                "merge_sizes": [2],
                "inline": {"window_index": "computed in the tower"},
            }
        )
    )
    assert caps.media == ("image", "video") and caps.smart_resize_variants == ("qvu",) and caps.merge_sizes == (2,)
    assert caps.inline_reason("window_index") == "computed in the tower" and caps.inline_reason("merger") is None


@pytest.mark.parametrize(
    "declared,names",
    [
        ({"rotary": "sincos"}, ["'rotary'", "angles", "cos_sin"]),
        ({"rotory": "angles"}, ["rotory", "rotary"]),
        ({"media": ("image", "audio")}, ["'media'", "image", "video"]),
        ({"media": "image"}, ["'media'"]),
        ({"media": ()}, ["'media'"]),
        ({"smart_resize_variants": ("hf", "pil")}, ["'smart_resize_variants'", "qvu"]),
        ({"video_rule": "per_video"}, ["'video_rule'", "per_frame", "frames_budget"]),
        ({"temporal_patch_sizes": (2, 0)}, ["'temporal_patch_sizes'", "positive integers"]),
        ({"merge_sizes": 2}, ["'merge_sizes'"]),
        ({"validates_inputs": "yes"}, ["'validates_inputs'", "True or False"]),
        ({"inline": {"windows": "x"}}, ["'inline'", "window_index"]),
        (["rotary"], ["dict"]),
    ],
)
def test_bad_declaration_names_key_and_allowed_values(declared, names):
    with pytest.raises(ValueError) as e:
        capabilities(Declares(declared))
    assert all(n in str(e.value) for n in names), (str(e.value), names)


def test_suite_reports_a_bad_declaration_as_usage_error():
    from vitspec.tests.capability import declared

    with pytest.raises(pytest.UsageError, match="'rotary'"):
        declared(Declares({"rotary": "both"}))
