"""A planted test file for tests/test_campaign.py's checks of the campaign runner and the shared example database:
copied into a temporary folder as test_planted.py and run in child pytest processes (never collected from here: its
name does not start with test_).

test_always fails in every run (x >= 150000 is drawn), test_sometimes only in the campaign's run 1, test_never
never; every example test_always tries is appended to $PLANT_LOG with the run number.
"""

import os

from hypothesis import given, strategies as st


def log(x):
    with open(os.environ["PLANT_LOG"], "a") as f:
        f.write(f"{os.environ.get('VITSPEC_CAMPAIGN_RUN')} {x}\n")


@given(st.integers(0, 10**6))
def test_always(x):
    log(x)
    assert x < 150000


@given(st.integers(0, 10))
def test_sometimes(x):
    assert os.environ.get("VITSPEC_CAMPAIGN_RUN") != "1" or x < 5


@given(st.integers())
def test_never(x):
    pass
