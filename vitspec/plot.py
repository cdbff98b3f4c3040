"""`vitspec explain --plot`: the resized image's patch grid, 2×2 merge groups and attention windows as a PNG.

Geometry of the PNG (see ``png_geometry``): a title band of TITLE_PX rows on top, then the resized image
drawn so that data pixel (x, y) lands on PNG pixel (x·sx, TITLE_PX + y·sy). The scale is the largest
integer s ≤ MAX_UPSCALE with s·longest side ≤ MAX_SIDE; an image whose longest side exceeds MAX_SIDE is
shrunk by MAX_SIDE / longest side (sx = width_px / resized_width, sy = height_px / resized_height). The
PNG is at least MIN_WIDTH wide so the title fits; extra width is blank, right of the image.

Lines: patches every 14 px (thin, grey), merge groups every 28 px (medium, dark grey), windows as thick
coloured rectangles inset by half their line width, so each window's border lies inside it, a shared edge
shows both colours side by side and a partial window at the right or bottom edge is visibly smaller.
Window rectangles come from vitspec.reference.windows.windows (merged-cell lists), numbered in window order; for a
video only the first frame's windows are drawn (every frame has the same tiling).
"""
from __future__ import annotations

import numpy as np

TITLE_PX = 40
MAX_SIDE = 2000
MAX_UPSCALE = 8
MIN_WIDTH = 640
DPI = 100
PATCH_LINE_PX = 1.0
MERGE_LINE_PX = 2.0
WINDOW_LINE_PX = 4.0
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#e377c2", "#17becf", "#bcbd22")


def png_geometry(resized_height: int, resized_width: int) -> dict:
    """PNG layout for a resized image: scale, image area in PNG pixels, title band, total size (module doc)."""
    longest = max(resized_height, resized_width)
    scale = min(MAX_UPSCALE, MAX_SIDE // longest) if longest <= MAX_SIDE else MAX_SIDE / longest
    width_px, height_px = max(1, round(resized_width * scale)), max(1, round(resized_height * scale))
    return {"scale": scale, "width_px": width_px, "height_px": height_px, "title_px": TITLE_PX,
            "png_width": max(width_px, MIN_WIDTH), "png_height": height_px + TITLE_PX,
            "sx": width_px / resized_width, "sy": height_px / resized_height}


def window_rectangles(grid_thw, patch_size: int = 14, merge_size: int = 2) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) in resized-image pixels of each window of the first frame, in window order (§3 Windows)."""
    from vitspec.reference.windows import windows
    _, gh, gw = (int(v) for v in grid_thw)
    cols, cell_px = gw // merge_size, patch_size * merge_size
    cells_per_frame = (gh // merge_size) * cols
    rects = []
    for win in windows([[1, gh, gw]], patch_size=patch_size, merge_size=merge_size):
        assert all(c < cells_per_frame for c in win)
        rows_, cols_ = [c // cols for c in win], [c % cols for c in win]
        rects.append((min(cols_) * cell_px, min(rows_) * cell_px,
                      (max(cols_) + 1) * cell_px, (max(rows_) + 1) * cell_px))
    return rects


def title_text(d: dict) -> str:
    """One line: input → resized size, grid_thw, tokens, windows (the counts of explain())."""
    g = d["grid_thw"]
    frames = f", {d['frames']} frames (frame 1 shown)" if d.get("frames", 1) > 1 else ""
    return (f"{d['height']}×{d['width']} → {d['resized_height']}×{d['resized_width']}{frames}: "
            f"grid [{g[0]}, {g[1]}, {g[2]}], {d['num_tokens']} tokens, {d['num_windows']} windows")


def load_picture(image_path: str, height: int, width: int, resized_height: int, resized_width: int) -> np.ndarray:
    """The picture as RGB uint8, resized like the model's preprocessing (§1.2 Pillow bicubic)."""
    from PIL import Image

    from vitspec.reference.resize import resize
    try:
        with Image.open(image_path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except OSError as e:
        raise ValueError(f"--image {image_path!r} cannot be read as a picture ({e})") from None
    if rgb.shape[:2] != (height, width):
        raise ValueError(f"--image {image_path!r} is {rgb.shape[0]}x{rgb.shape[1]} but the size given is "
                         f"{height}x{width}")
    return resize(rgb, resized_height, resized_width)


def _pt(px: float) -> float:
    """Line widths and font sizes are given in points; this many points draw px PNG pixels."""
    return px * 72.0 / DPI


def _grid_lines(ax, rh: int, rw: int, step: int, px: float, colour: str) -> None:
    """Vertical and horizontal lines every `step` data pixels (patch or merge-group boundaries)."""
    from matplotlib.collections import LineCollection
    segs = [[(x, 0), (x, rh)] for x in range(step, rw, step)] + [[(0, y), (rw, y)] for y in range(step, rh, step)]
    ax.add_collection(LineCollection(segs, colors=colour, linewidths=_pt(px), antialiaseds=False))


def plot_explain(d: dict, path: str, image_path: str | None = None) -> dict:
    """Draw explain()'s patch grid, merge groups and windows (§1.3, §3 Windows) to a PNG; returns png_geometry."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'vitspec[plot]'") from None
    rh, rw = d["resized_height"], d["resized_width"]
    geo = png_geometry(rh, rw)
    fig = Figure(figsize=(geo["png_width"] / DPI, geo["png_height"] / DPI), dpi=DPI, facecolor="white")
    ax = fig.add_axes((0, 0, geo["width_px"] / geo["png_width"], geo["height_px"] / geo["png_height"]))
    ax.set_axis_off()
    ax.set_xlim(0, rw)
    ax.set_ylim(rh, 0)
    if image_path is not None:
        picture = load_picture(image_path, d["height"], d["width"], rh, rw)
        ax.imshow(picture, extent=(0, rw, rh, 0), interpolation="nearest", aspect="auto")
    _grid_lines(ax, rh, rw, 14, PATCH_LINE_PX, "#b0b0b0")
    _grid_lines(ax, rh, rw, 28, MERGE_LINE_PX, "#505050")
    inset_x, inset_y = WINDOW_LINE_PX / 2 / geo["sx"], WINDOW_LINE_PX / 2 / geo["sy"]
    for n, (x0, y0, x1, y1) in enumerate(window_rectangles(d["grid_thw"])):
        colour = PALETTE[n % len(PALETTE)]
        # label height: a quarter of a full window, shrunk to fit a partial window's width and height
        font_px = min(28.0, 112 * geo["sy"] / 4, (x1 - x0) * geo["sx"] / (0.7 * len(str(n)) + 0.4),
                      (y1 - y0) * geo["sy"] * 0.6)
        ax.add_patch(Rectangle((x0 + inset_x, y0 + inset_y), x1 - x0 - 2 * inset_x, y1 - y0 - 2 * inset_y,
                               fill=False, edgecolor=colour, linewidth=_pt(WINDOW_LINE_PX), antialiased=False))
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, str(n), color=colour, fontsize=_pt(max(4.0, font_px)), fontweight="bold",
                ha="center", va="center", bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none"})
    scale = geo["scale"]
    note = "" if scale == int(scale) else f"  [scaled ×{scale:.3f}]"
    fig.text(4 / geo["png_width"], 1 - (TITLE_PX / 2) / geo["png_height"], title_text(d) + note,
             fontsize=_pt(14), va="center", ha="left")
    try:
        fig.savefig(path, dpi=DPI, format="png")
    except OSError as e:
        raise ValueError(f"--plot {path!r} cannot be written ({e})") from None
    return geo
