"""fullatt_layout (spec/protocol.py Capabilities): a port that stores one window-attention period (llama.cpp's
n_wa_pattern) runs only periodic full-attention layouts. Declaring "periodic", its tower checks draw such layouts
only, and run, instead of failing on layouts it cannot represent; every released config is periodic."""

from __future__ import annotations

import contextlib
import types

import pytest

from vitspec.spec.configs import MODELS, fullatt_period, periodic_fullatt, vision_config
from vitspec.spec.protocol import capabilities
from vitspec.tests import checks, report, strategies as S


class Declares:
    def __init__(self, layout):
        self.capabilities = {"fullatt_layout": layout}


@contextlib.contextmanager
def running_under(target):
    """checks.CURRENT as during a check of `target` (what the plugin sets before each test)."""
    saved = checks.CURRENT.get("item")
    checks.CURRENT["item"] = types.SimpleNamespace(config=types.SimpleNamespace(_vitspec_target=target))
    try:
        yield
    finally:
        checks.CURRENT["item"] = saved


def layouts(target, n: int = 200) -> list[tuple[int, tuple[int, ...]]]:
    """(depth, full blocks) of n configs() draws during a check of `target` (derandomized, no shrinking)."""
    with running_under(target):
        drawn = S.draw_many(S.configs(max_depth=4), n)
    return [(c["depth"], tuple(c["fullatt_block_indexes"])) for c in drawn]


def test_released_configs_are_periodic():
    for model in MODELS:
        config = vision_config(model)
        period = fullatt_period(config["fullatt_block_indexes"], config["depth"])
        assert period == 8 and periodic_fullatt(config["depth"], period) == tuple(config["fullatt_block_indexes"])


@pytest.mark.parametrize(
    "blocks,depth,period",
    [((1,), 2, 2), ((0,), 2, None), ((1, 3), 4, 2), ((2,), 4, 3), ((3,), 4, 4), ((1, 2), 4, None), ((), 4, None)],
)
def test_fullatt_period(blocks, depth, period):
    assert fullatt_period(blocks, depth) == period


def test_a_periodic_target_is_drawn_periodic_layouts_only():
    drawn = layouts(Declares("periodic"))
    assert all(fullatt_period(full, depth) is not None for depth, full in drawn), drawn
    assert all(0 < len(full) < depth for depth, full in drawn), "a full and a window block in every layout"
    assert {(4, (1, 3)), (4, (2,)), (4, (3,)), (3, (1,)), (3, (2,)), (2, (1,))} <= set(drawn), sorted(set(drawn))


@pytest.mark.negative_control
def test_any_target_is_drawn_layouts_a_periodic_port_cannot_run():
    """Without the declaration the draws hold non-periodic layouts: the restriction above is what removes them."""
    drawn = layouts(Declares("any"))
    assert any(fullatt_period(full, depth) is None for depth, full in drawn)


def test_the_declaration_is_checked():
    assert capabilities(Declares("periodic")).fullatt_layout == "periodic"
    with pytest.raises(ValueError, match=r"capabilities\['fullatt_layout'\] must be one of \['any', 'periodic'\]"):
        capabilities(Declares("sometimes"))


def test_verify_of_a_periodic_port_runs_its_tower_checks():
    """The port's tower checks pass (none meets a layout it refuses) and exercise its vision_tower."""
    run = report.verify(
        "vitspec.tests.children.periodic_port:TARGET",
        "test_vision_tower_matches_reference or test_tower_bit_identical_call_after_call",
    )
    tower = report.rows(run.stdout).get("vision_tower")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert tower and tower["passed"] == 2 and tower["exercised"] == 2 and tower["failed"] == 0, run.stdout[-3000:]
