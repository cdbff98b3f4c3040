"""The invariant catalogue (spec/invariants.py) against the suite: every invariant is checked by at least one
test and has at least one negative control, as found by reading the test files."""

from __future__ import annotations

import pytest

from vitspec.invariant_scan import checking_tests, with_tests
from vitspec.spec.invariants import INVARIANTS

pytestmark = pytest.mark.stage("document")


@pytest.mark.parametrize("inv", with_tests(), ids=lambda i: i.id)
def test_every_invariant_has_a_test_and_a_negative_control(inv):
    assert inv.tests, f"{inv.id} ({inv.statement}) is checked by no test"
    assert inv.negative, f"{inv.id} ({inv.statement}) has no negative control"


def test_scan_finds_nothing_in_an_empty_suite(tmp_path):
    (tmp_path / "test_x.py").write_text('def check_a(x):\n    """WIN-PERM: a check."""\n\ndef test_b():\n    pass\n')
    found = checking_tests(tmp_path)
    assert all(not d["tests"] and not d["negative"] for d in found.values()), "a test that calls no check counted"
    assert {i.id for i in INVARIANTS} == set(found)
