"""`vitspec explain --plot` (vitspec/plot.py): PNG size, and window borders exactly where vitspec.reference.windows puts them.

PNG geometry, derived by hand from vitspec/plot.py's documented rule: a 40-px title band, then s PNG pixels per
image pixel with s the largest integer <= 8 such that s·(longest side) <= 2000, or 2000/longest when the
longest side is over 2000 px; at least 640 px wide. Window borders are thick saturated colours; patch and
merge lines are grey, so "a saturated pixel" detects window borders only.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from vitspec.cli import main  # noqa: E402
from vitspec.reference.windows import windows  # noqa: E402

TITLE = 40
BAND = 4  # a window border is drawn inside its window, up to 4 PNG px from the edge
OFFSET = 5  # scan lines run 5 image px inside a window row or column: off the patch lines, clear of the labels


def plot(tmp_path, capsys, size: str, *extra) -> np.ndarray:
    """Run `vitspec explain SIZE --plot` and return the PNG as an RGB int array."""
    path = tmp_path / f"{size}.png"
    assert main(["explain", size, "--plot", str(path), *extra]) == 0
    capsys.readouterr()
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def saturated(pixels: np.ndarray) -> np.ndarray:
    """Window-border colour: channels far apart (grey lines, white paper and grey pictures are not)."""
    return pixels.max(axis=-1) - pixels.min(axis=-1) > 60


def window_edges(grid_h: int, grid_w: int) -> tuple[list[int], list[int]]:
    """Window borders in image px from vitspec.reference.windows: merged-cell ids → (row, col) → 28-px cells."""
    cols = grid_w // 2
    xs, ys = set(), set()
    for win in windows([[1, grid_h, grid_w]]):
        r = [c // cols for c in win]
        c = [c % cols for c in win]
        xs |= {min(c) * 28, (max(c) + 1) * 28}
        ys |= {min(r) * 28, (max(r) + 1) * 28}
    return sorted(xs), sorted(ys)


def border_hits(line: np.ndarray, edges: list[int], scale: int) -> list[bool]:
    """For each edge (image px), whether a saturated pixel lies within BAND PNG px of it along a scan line."""
    hot = saturated(line)
    return [bool(hot[max(0, e * scale - BAND):e * scale + BAND].any()) for e in edges]


def only_at(line: np.ndarray, edges: list[int], scale: int) -> bool:
    """Every saturated pixel of a scan line lies within BAND PNG px of one of the edges."""
    hot = np.flatnonzero(saturated(line))
    return all(any(abs(p - e * scale) <= BAND for e in edges) for p in hot)


def test_window_borders_where_the_reference_puts_them_336x476(tmp_path, capsys):
    png = plot(tmp_path, capsys, "336x476")
    # 336 = 12·28 and 476 = 17·28 stay as they are; 8·476 > 2000 >= 4·476, so s = 4
    s = 4
    assert png.shape == (336 * s + TITLE, 476 * s, 3)
    xs, ys = window_edges(24, 34)
    # by hand: merged grid 12×17 → windows of 4 cells (112 px); the last column is 1 cell (28 px) wide
    assert xs == [0, 112, 224, 336, 448, 476] and ys == [0, 112, 224, 336]
    image = png[TITLE:]
    for top in ys[:-1]:
        row = image[(top + OFFSET) * s]
        assert all(border_hits(row, xs, s)), top
        assert only_at(row, xs, s), top
        # negative control: the same detector one patch (14 px) to the right finds no border
        shifted = [x + 14 for x in xs if x + 14 < 476]
        assert not any(border_hits(row, shifted, s)), top
    for left in xs[:-1]:
        col = image[:, (left + OFFSET) * s]
        assert all(border_hits(col, ys, s)), left
        assert only_at(col, ys, s), left
        assert not any(border_hits(col, [y + 14 for y in ys if y + 14 < 336], s)), left


def test_partial_window_is_drawn_smaller(tmp_path, capsys):
    png = plot(tmp_path, capsys, "336x476")[TITLE:]
    row = saturated(png[OFFSET * 4])
    # the last window spans image px 448..476: its border pixels sit 112 PNG px apart, the full windows' 448
    right = np.flatnonzero(row[448 * 4 - BAND:])
    assert right.size and (right.max() - right.min()) > 28 * 4 - 2 * BAND
    assert not row[448 * 4 + BAND:476 * 4 - BAND].any()


def test_size_cap_for_a_large_image(tmp_path, capsys):
    png = plot(tmp_path, capsys, "3000x4000")
    # 3000×4000 → 2996×4004 (SPEC-NOTES §1.1); shrunk by 2000/4004: 4004 → 2000, 2996 → 1496.5… → 1497
    assert png.shape == (1497 + TITLE, 2000, 3)


def test_small_image_keeps_minimum_width(tmp_path, capsys):
    png = plot(tmp_path, capsys, "56x56")
    # 56 → s = 8 (8·56 = 448); the PNG is widened to 640 px for the title, blank right of the image
    assert png.shape == (448 + TITLE, 640, 3)
    assert (png[TITLE:, 460:] == 255).all()
    assert (png[:TITLE] < 128).any()  # the title text


def test_title_states_the_counts():
    from vitspec.plot import title_text
    d = {"height": 1080, "width": 1920, "frames": 1, "resized_height": 1092, "resized_width": 1932,
         "grid_thw": [1, 78, 138], "num_tokens": 2691, "num_windows": 180}
    assert title_text(d) == "1080×1920 → 1092×1932: grid [1, 78, 138], 2691 tokens, 180 windows"


def test_plot_over_a_picture(tmp_path, capsys):
    # a grey ramp with an alpha channel: HF-style conversion drops alpha (SPEC-NOTES §1.2)
    y, x = np.mgrid[0:336, 0:476]
    grey = ((x + y) % 200 + 20).astype(np.uint8)
    rgba = np.stack([grey, grey, grey, (x % 256).astype(np.uint8)], axis=-1)
    picture = tmp_path / "ramp.png"
    Image.fromarray(rgba, "RGBA").save(picture)
    png = plot(tmp_path, capsys, "336x476", "--image", str(picture))[TITLE:]
    s = 4
    # away from every line the PNG shows the picture itself (no resize: 336×476 is already a multiple of 28)
    for yy, xx in ((5, 5), (40, 61), (300, 460), (200, 333)):
        assert png[yy * s + 1, xx * s + 1].tolist() == [grey[yy, xx]] * 3, (yy, xx)
    xs, _ = window_edges(24, 34)
    row = png[OFFSET * s]
    assert all(border_hits(row, xs, s)) and only_at(row, xs, s)


def test_plot_over_a_picture_that_is_resized(tmp_path, capsys):
    # 300×470 → 308×476 (round(300/28) = 11, round(470/28) = 17); Pillow's BICUBIC is the oracle
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(300, 470, 3), dtype=np.uint8)
    picture = tmp_path / "noise.png"
    Image.fromarray(rgb, "RGB").save(picture)
    png = plot(tmp_path, capsys, "300x470", "--image", str(picture))[TITLE:]
    expected = np.asarray(Image.fromarray(rgb).resize((476, 308), Image.Resampling.BICUBIC)).astype(int)
    s = 4
    assert png.shape[:2] == (308 * s, 476 * s)
    for yy, xx in ((5, 5), (50, 101), (250, 300), (303, 470)):
        assert png[yy * s + 1, xx * s + 1].tolist() == expected[yy, xx].tolist(), (yy, xx)


def test_picture_of_the_wrong_size_is_a_usage_error(tmp_path, capsys):
    picture = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 20, 3), dtype=np.uint8)).save(picture)
    rc = main(["explain", "336x476", "--plot", str(tmp_path / "out.png"), "--image", str(picture)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "10x20" in err
