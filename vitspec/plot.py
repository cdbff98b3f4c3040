"""`vitspec explain --plot`: the resized image's patch grid, 2×2 merge groups and attention windows as a PNG.

Geometry of the PNG (see ``png_geometry``), top to bottom: a title band of TITLE_PX rows, a band of
TOP_AXIS_PX rows for the patch axis (x in patches), the image, a band of BOTTOM_AXIS_PX rows for the pixel axis
(x in pixels) and a band of LEGEND_PX rows for the legend. Left of the image LEFT_AXIS_PX columns hold the pixel
axis (y in pixels), right of it RIGHT_AXIS_PX columns the patch axis (y in patches). Data pixel (x, y) of the
resized image lands on PNG pixel (LEFT_AXIS_PX + x·sx, TITLE_PX + TOP_AXIS_PX + y·sy). The scale is the largest
integer s ≤ MAX_UPSCALE with s·longest side ≤ MAX_SIDE; an image whose longest side exceeds MAX_SIDE is shrunk
by MAX_SIDE / longest side (sx = width_px / resized_width, sy = height_px / resized_height). The PNG is at least
MIN_WIDTH wide so the title and legend fit; extra width is blank, right of the right axis.

Lines (named in the legend): patches every 14 px (thin, grey), merge groups every 28 px (medium, dark grey),
windows as thick coloured rectangles with a white outline (WINDOW_HALO_PX each side, so a border stays visible
over a picture of the border's own colour), inset so that the outlined border lies inside its window: a shared
edge shows both colours side by side and a partial window at the right or bottom edge is visibly smaller.
Each window is labelled with its number and its patch count. Window rectangles come from
vitspec.reference.windows.windows (merged-cell lists), numbered in window order; for a video only the first
frame's windows are drawn (every frame has the same tiling).
"""

from __future__ import annotations

import math

import numpy as np

TITLE_PX = 40
TOP_AXIS_PX = 40
BOTTOM_AXIS_PX = 40
LEGEND_PX = 32
LEFT_AXIS_PX = 64
RIGHT_AXIS_PX = 48
MAX_SIDE = 2000
MAX_UPSCALE = 8
MIN_WIDTH = 760
DPI = 100
PATCH_LINE_PX = 1.0
MERGE_LINE_PX = 2.0
WINDOW_LINE_PX = 4.0
WINDOW_HALO_PX = 1.5
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#e377c2", "#17becf", "#bcbd22")


def png_geometry(resized_height: int, resized_width: int) -> dict:
    """PNG layout for a resized image: scale, image area and its origin in PNG pixels, bands, total size (module doc)."""
    longest = max(resized_height, resized_width)
    scale = min(MAX_UPSCALE, MAX_SIDE // longest) if longest <= MAX_SIDE else MAX_SIDE / longest
    width_px, height_px = max(1, round(resized_width * scale)), max(1, round(resized_height * scale))
    left, top = LEFT_AXIS_PX, TITLE_PX + TOP_AXIS_PX
    return {
        "scale": scale,
        "width_px": width_px,
        "height_px": height_px,
        "title_px": TITLE_PX,
        "left_px": left,
        "top_px": top,
        "png_width": max(left + width_px + RIGHT_AXIS_PX, MIN_WIDTH),
        "png_height": top + height_px + BOTTOM_AXIS_PX + LEGEND_PX,
        "sx": width_px / resized_width,
        "sy": height_px / resized_height,
    }


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
        rects.append(
            (min(cols_) * cell_px, min(rows_) * cell_px, (max(cols_) + 1) * cell_px, (max(rows_) + 1) * cell_px)
        )
    return rects


def title_text(d: dict) -> str:
    """One line: input → resized size, grid_thw, tokens, windows (the counts of explain())."""
    g = d["grid_thw"]
    frames = f", {d['frames']} frames (frame 1 shown)" if d.get("frames", 1) > 1 else ""
    return (
        f"{d['height']}×{d['width']} → {d['resized_height']}×{d['resized_width']}{frames}: "
        f"grid [{g[0]}, {g[1]}, {g[2]}], {d['num_tokens']} tokens, {d['num_windows']} windows"
    )


def picture_size(image_path: str) -> tuple[int, int]:
    """(height, width) of the picture at image_path, or a ValueError naming --image."""
    from PIL import Image

    try:
        with Image.open(image_path) as im:
            return im.height, im.width
    except OSError as e:
        raise ValueError(f"--image {image_path!r} cannot be read as a picture ({e})") from None


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
        raise ValueError(
            f"--image {image_path!r} is {rgb.shape[0]}x{rgb.shape[1]} but the size given is {height}x{width}"
        )
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
        from matplotlib import patheffects
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Rectangle
        from matplotlib.ticker import MultipleLocator
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'vitspec[plot]'") from None
    rh, rw = d["resized_height"], d["resized_width"]
    geo = png_geometry(rh, rw)
    W, H = geo["png_width"], geo["png_height"]
    fig = Figure(figsize=(W / DPI, H / DPI), dpi=DPI, facecolor="white")
    bottom = H - geo["top_px"] - geo["height_px"]
    ax = fig.add_axes((geo["left_px"] / W, bottom / H, geo["width_px"] / W, geo["height_px"] / H))
    ax.set_xlim(0, rw)
    ax.set_ylim(rh, 0)
    ax.set_facecolor("white")
    for spine in ax.spines.values():
        spine.set_visible(False)
    tick_font = _pt(11)
    ax.tick_params(labelsize=tick_font, length=_pt(4), width=_pt(1))
    ax.set_xlabel("x (pixels of the resized image)", fontsize=tick_font, labelpad=_pt(2))
    ax.set_ylabel("y (pixels)", fontsize=tick_font, labelpad=_pt(2))
    to_patches = (lambda v: v / 14.0, lambda p: p * 14.0)
    top = ax.secondary_xaxis("top", functions=to_patches)
    right = ax.secondary_yaxis("right", functions=to_patches)
    top.set_xlabel("x (patches of 14 px)", fontsize=tick_font, labelpad=_pt(2))
    right.set_ylabel("y (patches)", fontsize=tick_font, labelpad=_pt(2))
    # ticks every 2**j patches (14·2**j px; from 8 patches on, on window edges), the smallest j giving <= 12 ticks
    for px_axis, patch_axis, extent in ((ax.xaxis, top.xaxis, rw), (ax.yaxis, right.yaxis, rh)):
        j = max(0, math.ceil(math.log2(extent / 14 / 12)))
        px_axis.set_major_locator(MultipleLocator(14 * 2**j))
        patch_axis.set_major_locator(MultipleLocator(2**j))
    for sec in (top, right):
        sec.tick_params(labelsize=tick_font, length=_pt(4), width=_pt(1))
        for spine in sec.spines.values():
            spine.set_visible(False)
    if image_path is not None:
        picture = load_picture(image_path, d["height"], d["width"], rh, rw)
        ax.imshow(picture, extent=(0, rw, rh, 0), interpolation="nearest", aspect="auto")
    _grid_lines(ax, rh, rw, 14, PATCH_LINE_PX, "#b0b0b0")
    _grid_lines(ax, rh, rw, 28, MERGE_LINE_PX, "#505050")
    stroke = WINDOW_LINE_PX + 2 * WINDOW_HALO_PX
    inset_x, inset_y = stroke / 2 / geo["sx"], stroke / 2 / geo["sy"]
    halo = [patheffects.Stroke(linewidth=_pt(stroke), foreground="white"), patheffects.Normal()]
    for n, (x0, y0, x1, y1) in enumerate(window_rectangles(d["grid_thw"])):
        colour = PALETTE[n % len(PALETTE)]
        patches = ((x1 - x0) // 14) * ((y1 - y0) // 14)
        label = f"{n}\n{patches}p"
        # label height: a quarter of a full window, shrunk to fit a partial window's width and two lines
        chars = max(len(str(n)), len(f"{patches}p"))
        font_px = min(
            24.0, 112 * geo["sy"] / 5, (x1 - x0) * geo["sx"] / (0.7 * chars + 0.6), (y1 - y0) * geo["sy"] * 0.3
        )
        rect = Rectangle(
            (x0 + inset_x, y0 + inset_y),
            x1 - x0 - 2 * inset_x,
            y1 - y0 - 2 * inset_y,
            fill=False,
            edgecolor=colour,
            linewidth=_pt(WINDOW_LINE_PX),
            antialiased=False,
        )
        rect.set_path_effects(halo)
        ax.add_patch(rect)
        ax.text(
            (x0 + x1) / 2,
            (y0 + y1) / 2,
            label,
            color=colour,
            fontsize=_pt(max(4.0, font_px)),
            fontweight="bold",
            ha="center",
            va="center",
            linespacing=1.0,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.0},
        )
    handles = [
        Line2D([], [], color="#b0b0b0", linewidth=_pt(PATCH_LINE_PX) * 2, label="patch (14 px)"),
        Line2D([], [], color="#505050", linewidth=_pt(MERGE_LINE_PX) * 1.5, label="2×2 merge group (28 px)"),
        Line2D(
            [],
            [],
            color=PALETTE[0],
            linewidth=_pt(WINDOW_LINE_PX),
            path_effects=halo,
            label="window (112 px): number, patch count",
        ),
    ]
    fig.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(4 / W, 2 / H),
        ncol=3,
        frameon=False,
        fontsize=_pt(12),
        handlelength=2.0,
        borderaxespad=0.0,
    )
    scale = geo["scale"]
    note = "" if scale == int(scale) else f"  [scaled ×{scale:.3f}]"
    fig.text(4 / W, 1 - (TITLE_PX / 2) / H, title_text(d) + note, fontsize=_pt(14), va="center", ha="left")
    try:
        fig.savefig(path, dpi=DPI, format="png")
    except OSError as e:
        raise ValueError(f"--plot {path!r} cannot be written ({e})") from None
    return geo
