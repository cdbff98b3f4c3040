"""A planted test file for tests/test_verify.py::test_failed_stage_and_exercised_stages_are_on_the_report, copied as
test_attributed.py: two checks marked with two stages that each call one of them and fail, one through
checks.fail naming its stage, one with a plain assert naming none, so that the report must record the stage each
one exercised and the failed stage only where one was named."""

import pytest

from vitspec.tests import checks


@pytest.mark.stage("window_index", "cu_seqlens")
def test_two_stages(target):
    target.cu_seqlens([[1, 4, 4]])
    checks.fail("cu_seqlens", "planted mismatch", {})


@pytest.mark.stage("window_index", "cu_seqlens")
def test_plain_assert(target):
    target.window_index([[1, 4, 4]])
    assert False, "no stage named"  # noqa: B011 (the failure under test is a plain assert)
