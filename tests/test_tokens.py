"""Token accounting (SPEC-NOTES §4): placeholders per image exact, the vision output rows equal to the prompt's
image pads, and the prompt check rejecting a mismatch; each with a negative control."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

from vitspec.reference import tokens as ref_tokens
from vitspec.reference.weights import random_weights
from vitspec.spec.configs import IMAGE_PAD_ID, VISION_END_ID, VISION_START_ID, small_config
from vitspec.spec.examples import TOKEN_EXAMPLES
from vitspec.tests import strategies as S
from vitspec.tests.checks import assert_index_equal, fail, to_numpy

CONFIG = small_config(depth=2, hidden_size=32, num_heads=2, fullatt_block_indexes=(1,))  # periodic: any port runs it


@pytest.mark.stage("num_image_tokens")
@given(S.grid_lists(max_images=4, max_cells=40, max_t=5, max_patches=20000))
@example([(3, 10, 22)])
def test_num_image_tokens_is_thw_over_4(stage, grid_thw):
    """TOKENS-COUNT: t*h*w/4 per image, written out here from the spec (and equal to the reference)."""
    got = stage("num_image_tokens")(np.array(grid_thw, dtype=np.int64))
    expected = np.array([t * h * w // 4 for t, h, w in grid_thw], dtype=np.int64)
    assert_index_equal("num_image_tokens", got, expected, grid_thw=grid_thw)
    assert_index_equal("num_image_tokens", got, ref_tokens.num_image_tokens(grid_thw), grid_thw=grid_thw)


@pytest.mark.stage("num_image_tokens")
@pytest.mark.parametrize("size", sorted(TOKEN_EXAMPLES))
def test_num_image_tokens_worked_values(stage, size):
    grid, count = TOKEN_EXAMPLES[size]
    assert_index_equal(
        "num_image_tokens",
        stage("num_image_tokens")(np.array([grid])),
        np.array([count]),
        image_size=size,
        grid_thw=[grid],
    )


def prompt(n_images: int) -> list[int]:
    """A prompt with one <|vision_start|><|image_pad|><|vision_end|> per image between text ids."""
    ids = [100, 101]
    for _ in range(n_images):
        ids += [VISION_START_ID, IMAGE_PAD_ID, VISION_END_ID, 102]
    return ids


def check_tokens_match_rows(
    num_image_tokens, output_rows: int, grid_thw, check_image_tokens=ref_tokens.check_image_tokens
) -> None:
    """TOKENS-COUNT and TOKENS-PROMPT: the expanded prompt holds exactly as many image pads as the vision tower
    returned rows, the prompt check accepts that, and it rejects one pad more or less."""
    counts = to_numpy(num_image_tokens(np.array(grid_thw, dtype=np.int64)))
    ids = ref_tokens.expand_image_pads(prompt(len(grid_thw)), grid_thw)
    pads = sum(1 for t in ids if t == IMAGE_PAD_ID)
    if pads != int(np.sum(counts)) or pads != output_rows:
        fail(
            "num_image_tokens",
            f"prompt pads {pads}, num_image_tokens {counts.tolist()}, vision rows {output_rows}",
            dict(grid_thw=grid_thw),
        )
    check_image_tokens(ids, output_rows)
    for wrong in (output_rows - 1, output_rows + 1):
        try:
            check_image_tokens(ids, wrong)
        except ValueError as e:
            if "Image features and image tokens do not match" not in str(e):
                fail("num_image_tokens", f"the prompt check's error does not say what mismatched: {e}", {})
        else:
            fail(
                "num_image_tokens",
                f"the prompt check accepts {wrong} vision rows for {pads} image pads",
                dict(grid_thw=grid_thw),
            )


def check_rows_equal_count(counts, output_rows: int, grid_thw) -> None:
    """TOKENS-COUNT for a tower alone: its rows equal the token count the reference's num_image_tokens gives (the
    expected value; the count itself is not under check), and the reference's prompt check accepts them."""
    ids = ref_tokens.expand_image_pads(prompt(len(grid_thw)), grid_thw)
    expected = int(np.sum(to_numpy(counts)))
    if output_rows != expected:
        fail(
            "vision_tower",
            f"{output_rows} output rows, but the prompt holds {expected} image pads (num_image_tokens "
            f"{to_numpy(counts).tolist()})",
            dict(grid_thw=grid_thw),
        )
    try:
        ref_tokens.check_image_tokens(ids, output_rows)
    except ValueError as e:
        fail("vision_tower", f"the prompt check refuses {output_rows} output rows: {e}", dict(grid_thw=grid_thw))


@pytest.mark.stage("vision_tower", helpers=("num_image_tokens",))
@S.heavy(0.3)
@given(S.grid_lists(max_images=3, max_cells=6, max_patches=300), S.seeds)
def test_vision_rows_equal_prompt_pads(stage, grid_thw, seed):
    """The tower's rows equal the prompt's image pads: counted by the target's num_image_tokens when it has one
    (then that count is checked too), by the reference's otherwise (the tower's rows are still checked)."""
    g = np.array(grid_thw, dtype=np.int64)
    out = stage("vision_tower")(S.pixel_values(seed, grid_thw), g, random_weights(CONFIG, seed), CONFIG)
    if tuple(out.shape) != (S.num_patches(grid_thw) // 4, CONFIG["out_hidden_size"]):
        fail(
            "vision_tower",
            f"output shape {tuple(out.shape)}, expected (sum t*h*w/4, out_hidden_size)",
            dict(grid_thw=grid_thw),
        )
    num_image_tokens = stage.or_reference("num_image_tokens")
    if stage.provides("num_image_tokens"):
        check_tokens_match_rows(num_image_tokens, int(out.shape[0]), grid_thw)
    else:
        check_rows_equal_count(num_image_tokens(g), int(out.shape[0]), grid_thw)


@pytest.mark.negative_control
@pytest.mark.stage("num_image_tokens")
@pytest.mark.parametrize(
    "planted",
    [
        lambda g: np.array([h * w // 4 for t, h, w in g]),  # frames ignored
        lambda g: np.array([(h // 2) * (w // 2) * t + 2 for t, h, w in g]),  # vision_start/end counted as pads
    ],
    ids=["frames_ignored", "start_end_counted"],
)
def test_token_check_rejects(planted):
    grid = [(3, 4, 6), (1, 8, 8)]
    check_tokens_match_rows(ref_tokens.num_image_tokens, 34, grid)
    with pytest.raises(AssertionError, match="prompt pads"):
        check_tokens_match_rows(planted, 34, grid)


@pytest.mark.negative_control
@pytest.mark.stage("vision_tower")
@pytest.mark.parametrize("rows", [33, 35])
def test_tower_rows_check_rejects_a_row_more_or_less(rows):
    """The check a tower without the target's num_image_tokens gets: the reference's count is the expected rows."""
    grid = [(3, 4, 6), (1, 8, 8)]
    check_rows_equal_count(ref_tokens.num_image_tokens(grid), 34, grid)
    with pytest.raises(AssertionError, match=f"{rows} output rows, but the prompt holds 34 image pads"):
        check_rows_equal_count(ref_tokens.num_image_tokens(grid), rows, grid)


@pytest.mark.negative_control
@pytest.mark.stage("num_image_tokens")
def test_token_check_rejects_a_lenient_prompt_check():
    lenient = lambda ids, rows: rows  # noqa: E731  accepts any count
    with pytest.raises(AssertionError, match="accepts 33 vision rows"):
        check_tokens_match_rows(ref_tokens.num_image_tokens, 34, [(3, 4, 6), (1, 8, 8)], lenient)


@pytest.mark.conformance
@pytest.mark.stage("num_image_tokens")
@given(st.integers(0, 50), st.integers(-3, 3).filter(bool))
def test_prompt_check_rejects_any_mismatch(rows, delta):
    ids = [IMAGE_PAD_ID] * rows + [7]
    assert ref_tokens.check_image_tokens(ids, rows) == rows
    if rows + delta >= 0:
        with pytest.raises(ValueError, match="do not match"):
            ref_tokens.check_image_tokens(ids, rows + delta)
