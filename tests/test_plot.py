"""`vitspec explain --plot` (vitspec/plot.py): PNG size, axes, legend, and window borders exactly where
vitspec.reference.windows puts them, visible over a picture of their own colour.

PNG geometry, derived by hand from vitspec/plot.py's documented rule: a 40-px title band and a 40-px patch-axis
band on top, a 64-px pixel axis on the left and a 48-px patch axis on the right of the image, a 40-px pixel-axis
band and a 32-px legend band below it; s PNG pixels per image pixel with s the largest integer <= 8 such that
s·(longest side) <= 2000, or 2000/longest when the longest side is over 2000 px; at least 760 px wide. Window
borders are thick saturated colours outlined in white; patch and merge lines are grey, so "a saturated pixel"
detects window borders only (over a grey or white picture) and "a white pixel" their outline (over a red one).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib", reason="NOT COVERED: matplotlib not installed (pip install 'vitspec[plot]')")

from vitspec.cli import main  # noqa: E402
from vitspec.reference.windows import windows  # noqa: E402

TOP = 40 + 40  # title band, then the patch axis
LEFT = 64  # the pixel axis
RIGHT = 48  # the patch axis
BELOW = 40 + 32  # the pixel axis, then the legend
BAND = 7  # a window border, outline included, is drawn inside its window, up to 1.5 + 4 + 1.5 PNG px from the edge
OFFSET = 5  # scan lines run 5 image px inside a window row or column: off the patch lines, clear of the labels


def plot(tmp_path, capsys, size: str, *extra) -> np.ndarray:
    """Run `vitspec explain SIZE --plot` and return the PNG as an RGB int array."""
    path = tmp_path / f"{size}.png"
    assert main(["explain", size, "--plot", str(path), *extra]) == 0
    out = capsys.readouterr().out
    assert f"wrote {path.resolve()}" in out  # text mode says where the PNG went
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def image_area(png: np.ndarray, height_px: int, width_px: int) -> np.ndarray:
    """The part of the PNG that shows the resized image."""
    return png[TOP : TOP + height_px, LEFT : LEFT + width_px]


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


def white(pixels: np.ndarray) -> np.ndarray:
    """The window borders' outline: every channel bright (grey lines are 176 at most)."""
    return pixels.min(axis=-1) > 200


def border_hits(line: np.ndarray, edges: list[int], scale: int, detect=saturated) -> list[bool]:
    """For each edge (image px), whether a detected pixel lies within BAND PNG px of it along a scan line."""
    hot = detect(line)
    return [bool(hot[max(0, e * scale - BAND) : e * scale + BAND].any()) for e in edges]


def only_at(line: np.ndarray, edges: list[int], scale: int, detect=saturated) -> bool:
    """Every detected pixel of a scan line lies within BAND PNG px of one of the edges."""
    hot = np.flatnonzero(detect(line))
    return all(any(abs(p - e * scale) <= BAND for e in edges) for p in hot)


def test_window_borders_where_the_reference_puts_them_336x476(tmp_path, capsys):
    png = plot(tmp_path, capsys, "336x476")
    # 336 = 12·28 and 476 = 17·28 stay as they are; 8·476 > 2000 >= 4·476, so s = 4
    s = 4
    assert png.shape == (TOP + 336 * s + BELOW, LEFT + 476 * s + RIGHT, 3)
    xs, ys = window_edges(24, 34)
    # by hand: merged grid 12×17 → windows of 4 cells (112 px); the last column is 1 cell (28 px) wide
    assert xs == [0, 112, 224, 336, 448, 476] and ys == [0, 112, 224, 336]
    image = image_area(png, 336 * s, 476 * s)
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
    row = saturated(image_area(plot(tmp_path, capsys, "336x476"), 336 * 4, 476 * 4)[OFFSET * 4])
    # the last window spans image px 448..476: its border pixels sit 112 PNG px apart, the full windows' 448
    right = np.flatnonzero(row[448 * 4 - BAND :])
    assert right.size and (right.max() - right.min()) > 28 * 4 - 2 * BAND
    assert not row[448 * 4 + BAND : 476 * 4 - BAND].any()


def test_axes_in_pixels_and_patches(tmp_path, capsys):
    png = plot(tmp_path, capsys, "336x476")
    s, h, w = 4, 336 * 4, 476 * 4
    # ticks every 2**j patches, the smallest j with at most 12 ticks: 476 px = 34 patches → j = 2 (every 4 patches,
    # 56 px); 336 px = 24 patches → j = 1 (every 2 patches, 28 px). Tick marks point out of the image area.
    below = png[TOP + h + 4, :]  # the pixel axis' tick marks, above its labels
    assert np.flatnonzero(below.max(axis=-1) < 128).tolist() == [LEFT + 56 * k * s for k in range(9)]
    above = png[TOP - 2, :]  # the patch axis' tick marks (its labels are higher)
    assert {LEFT + 56 * k * s for k in range(9)} <= set(np.flatnonzero(above.max(axis=-1) < 128).tolist())
    left = png[TOP : TOP + h, LEFT - 2]
    assert np.flatnonzero(left.max(axis=-1) < 128).tolist() == [28 * k * s for k in range(12)]
    # tick labels: dark text in each band beside the image
    for band in (
        png[TOP + h + 8 : TOP + h + 40, LEFT : LEFT + w],
        png[40 : TOP - 8, LEFT : LEFT + w],
        png[TOP : TOP + h, : LEFT - 8],
        png[TOP : TOP + h, LEFT + w + 8 :],
    ):
        assert (band.max(axis=-1) < 100).any()


def test_legend_names_the_line_styles(tmp_path, capsys):
    png = plot(tmp_path, capsys, "56x56")
    legend = png[-32:]
    # the window sample is a saturated line outlined in white; the patch and merge samples and the text are grey/dark
    assert saturated(legend).any() and (legend.max(axis=-1) < 100).any()
    grey = np.abs(legend - 0xB0).max(axis=-1) <= 8  # the patch line colour #b0b0b0
    assert grey.any()
    import matplotlib.figure

    from vitspec.plot import plot_explain  # the legend's labels, as matplotlib holds them

    seen = []
    real = matplotlib.figure.Figure.legend

    def spy(self, *args, **kwargs):
        seen.extend(h.get_label() for h in kwargs["handles"])
        return real(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(matplotlib.figure.Figure, "legend", spy)
        d = {
            "height": 56,
            "width": 56,
            "frames": 1,
            "resized_height": 56,
            "resized_width": 56,
            "grid_thw": [1, 4, 4],
            "num_tokens": 4,
            "num_windows": 1,
        }
        plot_explain(d, str(tmp_path / "spy.png"))
    assert [label.split(" (")[0] for label in seen] == ["patch", "2×2 merge group", "window"]


def test_size_cap_for_a_large_image(tmp_path, capsys):
    png = plot(tmp_path, capsys, "3000x4000")
    # 3000×4000 → 2996×4004 (SPEC-NOTES §1.1); shrunk by 2000/4004: 4004 → 2000, 2996 → 1496.5… → 1497
    assert png.shape == (TOP + 1497 + BELOW, LEFT + 2000 + RIGHT, 3)


def test_small_image_keeps_minimum_width(tmp_path, capsys):
    png = plot(tmp_path, capsys, "56x56")
    # 56 → s = 8 (8·56 = 448); 64 + 448 + 48 = 560 < 760: widened for the title and legend, blank on the right
    assert png.shape == (TOP + 448 + BELOW, 760, 3)
    assert (png[TOP : TOP + 448, LEFT + 448 + RIGHT :] == 255).all()
    assert (png[:40] < 128).any()  # the title text


def test_title_states_the_counts():
    from vitspec.plot import title_text

    d = {
        "height": 1080,
        "width": 1920,
        "frames": 1,
        "resized_height": 1092,
        "resized_width": 1932,
        "grid_thw": [1, 78, 138],
        "num_tokens": 2691,
        "num_windows": 180,
    }
    assert title_text(d) == "1080×1920 → 1092×1932: grid [1, 78, 138], 2691 tokens, 180 windows"


def test_plot_over_a_picture(tmp_path, capsys):
    # a grey ramp with an alpha channel: HF-style conversion drops alpha (SPEC-NOTES §1.2)
    y, x = np.mgrid[0:336, 0:476]
    grey = ((x + y) % 200 + 20).astype(np.uint8)
    rgba = np.stack([grey, grey, grey, (x % 256).astype(np.uint8)], axis=-1)
    picture = tmp_path / "ramp.png"
    Image.fromarray(rgba, "RGBA").save(picture)
    s = 4
    png = image_area(plot(tmp_path, capsys, "336x476", "--image", str(picture)), 336 * s, 476 * s)
    # away from every line the PNG shows the picture itself (no resize: 336×476 is already a multiple of 28)
    for yy, xx in ((5, 5), (40, 61), (300, 460), (200, 333)):
        assert png[yy * s + 1, xx * s + 1].tolist() == [grey[yy, xx]] * 3, (yy, xx)
    xs, _ = window_edges(24, 34)
    row = png[OFFSET * s]
    assert all(border_hits(row, xs, s)) and only_at(row, xs, s)


def test_borders_stay_visible_over_red(tmp_path, capsys):
    """Over a red picture the red windows' borders would vanish; the white outline marks every border."""
    picture = tmp_path / "red.png"
    Image.fromarray(np.full((336, 476, 3), (220, 0, 0), dtype=np.uint8)).save(picture)
    s = 4
    png = image_area(plot(tmp_path, capsys, "336x476", "--image", str(picture)), 336 * s, 476 * s)
    xs, ys = window_edges(24, 34)
    for top in ys[:-1]:
        row = png[(top + OFFSET) * s]
        assert all(border_hits(row, xs, s, white)) and only_at(row, xs, s, white), top
        assert not any(border_hits(row, [x + 14 for x in xs if x + 14 < 476], s, white)), top
    for left in xs[:-1]:
        col = png[:, (left + OFFSET) * s]
        assert all(border_hits(col, ys, s, white)) and only_at(col, ys, s, white), left
    # and the red content itself is there (window 0 is drawn in red: only its outline tells it apart)
    assert png[60 * s + 1, 5 * s + 1].tolist() == [220, 0, 0]


def test_image_alone_is_enough(tmp_path, capsys, monkeypatch):
    """`vitspec explain --image PIC`: the size comes from the picture, the PNG goes to ./PIC.vitspec.png."""
    rng = np.random.default_rng(1)
    picture = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, size=(300, 470, 3), dtype=np.uint8)).save(picture)
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "--image", str(picture)]) == 0
    out = capsys.readouterr().out
    written = tmp_path / "photo.vitspec.png"
    assert "300×470" in out and f"wrote {written}" in out
    assert main(["explain", "--image", str(picture), "--json"]) == 0
    import json

    d = json.loads(capsys.readouterr().out)
    assert (d["height"], d["width"], d["resized_height"], d["resized_width"]) == (300, 470, 308, 476)
    assert d["plot"] == str(written)
    explicit = plot(tmp_path, capsys, "300x470", "--image", str(picture))
    assert np.array_equal(np.asarray(Image.open(written).convert("RGB")).astype(int), explicit)


def test_plot_over_a_picture_that_is_resized(tmp_path, capsys):
    # 300×470 → 308×476 (round(300/28) = 11, round(470/28) = 17); Pillow's BICUBIC is the oracle
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(300, 470, 3), dtype=np.uint8)
    picture = tmp_path / "noise.png"
    Image.fromarray(rgb, "RGB").save(picture)
    s = 4
    full = plot(tmp_path, capsys, "300x470", "--image", str(picture))
    assert full.shape[:2] == (TOP + 308 * s + BELOW, LEFT + 476 * s + RIGHT)
    png = image_area(full, 308 * s, 476 * s)
    expected = np.asarray(Image.fromarray(rgb).resize((476, 308), Image.Resampling.BICUBIC)).astype(int)
    for yy, xx in ((5, 5), (50, 101), (250, 300), (303, 470)):
        assert png[yy * s + 1, xx * s + 1].tolist() == expected[yy, xx].tolist(), (yy, xx)


def test_picture_of_the_wrong_size_is_a_usage_error(tmp_path, capsys):
    picture = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 20, 3), dtype=np.uint8)).save(picture)
    rc = main(["explain", "336x476", "--plot", str(tmp_path / "out.png"), "--image", str(picture)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "10x20" in err
