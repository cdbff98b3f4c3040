"""A planted test file for tests/test_verify.py::test_checks_option_selects_target_or_self_checks, copied as
test_planted_checks.py: one target check (a stage marker, no other marker) and five self-checks (conformance,
negative_control, modules, the document stage, no marker at all), so that each --checks value must select exactly
its own."""

import pytest


@pytest.mark.stage("num_image_tokens")
def test_target(target):
    assert target.num_image_tokens([[1, 2, 2]]).tolist() == [1]


@pytest.mark.conformance
@pytest.mark.stage("num_image_tokens")
def test_conformance():
    pass


@pytest.mark.negative_control
@pytest.mark.stage("cu_seqlens")
def test_negative():
    pass


@pytest.mark.modules
@pytest.mark.stage("patchify")
def test_modules():
    pass


@pytest.mark.stage("document")
def test_document():
    pass


def test_unmarked():
    pass
