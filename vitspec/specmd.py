"""Generate spec/SPEC.md from the spec data and the float64 reference.

`python -m vitspec.specmd` rewrites spec/SPEC.md; `python -m vitspec.specmd --check` exits 1 with a diff summary
when the file on disk differs from what the generator produces now. The output is deterministic: no dates,
every number formatted explicitly.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections import Counter
from pathlib import Path

import numpy as np

import vitspec.spec as _spec

SPEC_MD = Path(_spec.__file__).with_name("SPEC.md")
PIPELINE = (
    "resize",
    "pixels",
    "patchify",
    "embed",
    "rope",
    "windows",
    "attention",
    "block",
    "merger",
    "tower",
    "tokens",
)


def num(x, digits: int = 6) -> str:
    """A number written explicitly: integers as integers, other floats with `digits` significant digits."""
    x = float(x) if isinstance(x, (float, np.floating)) else x
    if isinstance(x, float):
        return str(int(round(x))) if x == round(x) else f"{x:.{digits}g}"
    return str(int(x))


def nums(xs, digits: int = 6) -> str:
    """A list written as [a, b, ...] with num()."""
    return "[" + ", ".join(num(x, digits) for x in xs) + "]"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; '|' inside cells is escaped."""

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header)] + [line(r) for r in rows]


def section_stages() -> list[str]:
    """Every protocol stage (spec/protocol.py STAGES) in pipeline order with its signature and rule."""
    from vitspec.spec.protocol import STAGES

    unknown = sorted({s.module for s in STAGES} - set(PIPELINE))
    if unknown:
        raise ValueError(f"stage modules must be in the pipeline order {list(PIPELINE)}, got {unknown}")
    out = [
        "## 1. Pipeline stages",
        "",
        "A target provides any of these methods; each module name is the same in reference/, impl/ and tests/.",
        "",
    ]
    for module in PIPELINE:
        stages = [s for s in STAGES if s.module == module]
        out += [f"### {module} (reference/{module}.py, impl/{module}.py, tests/test_{module}.py)", ""]
        if not stages:
            out += ["No protocol method; this module serves the stages above.", ""]
        for s in stages:
            out += [f"- `{s.name}`{' (optional)' if s.optional else ''}: {s.rule}.", "", f"  `{s.signature}`", ""]
            facts = [
                f"reference `{s.reference}`",
                f"tolerance row {s.tolerance or 'none (exact)'}",
                f"bad-input table {s.bad_inputs or 'none'}",
                f"{len(s.mutants)} mutants",
            ]
            if s.capabilities:
                facts.append("capabilities " + ", ".join(f"`{c}`" for c in s.capabilities))
            if s.forms:
                facts.append("equivalent forms " + ", ".join(f'"{f}"' for f in s.forms))
            out += ["  " + "; ".join(facts) + ".", ""]
    out += section_capabilities()
    return out


def section_capabilities() -> list[str]:
    """What a target may declare (spec/protocol.py Capabilities) and the equivalent forms (spec/differences.py)."""
    from vitspec.spec.differences import EQUIVALENT_FORMS
    from vitspec.spec.protocol import CAPABILITY_VALUES, Capabilities

    default = Capabilities()
    out = [
        "### Capabilities a target declares",
        "",
        "A target's `capabilities` dict; a missing key takes the default. A check outside the declaration is "
        "NOT COVERED, naming the capability.",
        "",
    ]
    out += table(
        ["key", "values", "default"],
        [
            [f"`{k}`", v, f"`{dict(default.inline) if k == 'inline' else getattr(default, k)!r}`"]
            for k, v in CAPABILITY_VALUES.items()
        ],
    )
    out += [
        "",
        "### Equivalent forms",
        "",
        "The checks compare the canonical form and record the representation a target gives.",
        "",
    ]
    out += [f'- `{f.stage}`, "{f.name}": {f.description}' for f in EQUIVALENT_FORMS]
    return out + [""]


def section_toy() -> list[str]:
    """Seed §1: the 8×8 matrix, its 2×2 patches and projection, and the 2×2 convolution."""
    from vitspec.reference import toy
    from vitspec.spec import examples as ex

    m = np.array(ex.MATRIX_8X8, dtype=np.float64)
    patches = toy.patchify2d(m, ex.TOY_PATCH_SIZE)
    projected = toy.linear(patches, np.array(ex.TOY_PROJECTION))
    conv = toy.conv2d(m, np.array(ex.TOY_KERNEL, dtype=np.float64))
    pc, cc = toy.patch_projection_cost(8, 8, 2, 1, 2), toy.conv_cost(8, 8, 2, 1)
    values = sorted({num(v) for v in conv.reshape(-1)})
    return [
        "### 2.1 The document's 8×8 example (seed §1)",
        "",
        "Input: the 8×8 matrix 1..64 row by row.",
        "",
        f"- Patches: {patches.shape[0]} non-overlapping 2×2 patches of {patches.shape[1]} values; "
        f"first {nums(patches[0])}, fifth (second band) {nums(patches[4])}.",
        f"- Projection by W = {ex.TOY_PROJECTION} (4×2): first patch → {nums(projected[0], 4)}; "
        f"last patch → {nums(projected[-1], 4)}; {pc['projections']} projections, "
        f"{pc['multiply_adds']} multiply-adds.",
        f"- Convolution with K = {ex.TOY_KERNEL}, stride 1, no padding: output "
        f"{conv.shape[0]}×{conv.shape[1]}; first two windows {nums(conv[0, :2])}; distinct values "
        f"{{{', '.join(values)}}}; {cc['inner_products']} inner products, {cc['multiply_adds']} multiply-adds.",
        "",
    ]


def explain_lines(title: str, d: dict) -> list[str]:
    """One image or video through explain(): resize, grid, patches, windows, segments, tokens."""
    from vitspec.plot import window_rectangles

    g = d["grid_thw"]
    shapes = Counter((x1 - x0, y1 - y0) for x0, y0, x1, y1 in window_rectangles(g))
    per_frame = sum(shapes.values())
    shape_text = ", ".join(
        f"{n} of {w}×{h} px ({(w // 14) * (h // 14)} patches)"
        for (w, h), n in sorted(shapes.items(), key=lambda kv: (-kv[0][0] * kv[0][1], kv[0]))
    )
    seg = Counter(d["full_attention_segments"])
    return [
        f"### {title}",
        "",
        f"- smart_resize {d['height']}×{d['width']} (min_pixels {d['min_pixels']}, max_pixels "
        f"{d['max_pixels']}) → {d['resized_height']}×{d['resized_width']}.",
        f"- grid_thw {nums(g)}: {d['num_patches']} patches (rows of pixel_values), {d['values_per_patch']} "
        f"values each.",
        f"- Windows: {d['num_windows']} in all, {per_frame} per frame: {shape_text}.",
        "- Full-attention segments: " + ", ".join(f"{n} of {s} patches" for s, n in sorted(seg.items())) + ".",
        f"- Merged tokens: {d['num_tokens']} (t·h·w/4); prompt placeholders {d['placeholder_tokens']} "
        f"(vision_start + image_pad × {d['num_tokens']} + vision_end).",
        "",
    ]


def video_padding_lines(frames: int, height: int, width: int) -> list[str]:
    """§1.2 temporal pairing (the last frame repeated), read back from reference/pixels.py preprocess."""
    from vitspec.reference.pixels import preprocess
    from vitspec.spec.configs import PREPROCESSOR

    levels = [40 * k for k in range(frames)]  # frame k is a constant picture of grey level 40k
    video = np.stack([np.full((height, width, 3), v, dtype=np.uint8) for v in levels])
    pixel_values, grid = preprocess([video])
    t, gh, gw = (int(v) for v in np.asarray(grid).reshape(-1, 3)[0])
    rows = np.asarray(pixel_values, dtype=np.float64).reshape(t, gh * gw, 3, 2, 14 * 14)
    mean, std = PREPROCESSOR["image_mean"][0], PREPROCESSOR["image_std"][0]
    grey = np.rint((rows[:, 0, 0, :, 0] * std + mean) * 255)  # channel 0, first pixel, per (t, frame)
    pairs = [tuple(levels.index(int(v)) for v in pair) for pair in grey]
    return [
        "- Frame pairing read back from preprocess (frame k drawn as grey level 40·k): temporal patches "
        + ", ".join(f"({a}, {b})" for a, b in pairs)
        + " — the last frame is repeated.",
        "",
    ]


def section_examples() -> list[str]:
    """Worked examples computed by the reference: seed §1 and §3, SPEC-NOTES §1.1, §3 and §4."""
    from vitspec.cli import explain
    from vitspec.reference import patchify as rp, rope, windows
    from vitspec.reference.resize import smart_resize
    from vitspec.spec import examples as ex
    from vitspec.spec.configs import HF_DEFAULT_PIXELS, PREPROCESSOR

    lo, hi = PREPROCESSOR["min_pixels"], PREPROCESSOR["max_pixels"]
    doc_rows = rp.document_patches(np.zeros((224, 224, 3)))
    out = ["## 2. Worked examples (computed by the reference)", ""] + section_toy()
    out += explain_lines("2.2 A 224×224 image (seed §3)", explain(224, 224, lo, hi))[:-1]
    out += [
        f"- The document's layout: {doc_rows.shape[0]} rows of {doc_rows.shape[1]} values (14·14·3, pixel-major,"
        " RGB interleaved); the model's rows hold 1176 = 3·2·14·14 values (C, T, P, P).",
        "",
    ]
    out += explain_lines("2.3 A 1080×1920 image (SPEC-NOTES §1.1, §4)", explain(1080, 1920, lo, hi))[:-1]
    d = explain(1080, 1920, HF_DEFAULT_PIXELS["min_pixels"], HF_DEFAULT_PIXELS["max_pixels"])
    out += [
        f"- With HF's class defaults (max_pixels {d['max_pixels']}): {d['resized_height']}×{d['resized_width']}, "
        f"grid {nums(d['grid_thw'])}, {d['num_tokens']} tokens.",
        "",
    ]
    out += explain_lines("2.4 A video of 5 frames of 224×336 (SPEC-NOTES §1.2)", explain(224, 336, lo, hi, 5))[:-1]
    out += video_padding_lines(5, 224, 336)
    rows = []
    for budget, cases in (("released", ex.SMART_RESIZE_RELEASED), ("HF default", ex.SMART_RESIZE_HF_DEFAULT)):
        cap = hi if budget == "released" else HF_DEFAULT_PIXELS["max_pixels"]
        for h, w in cases:
            rows.append([f"{h}×{w}", f"{lo}", f"{cap}", "×".join(map(str, smart_resize(h, w, 28, lo, cap, "hf")))])
    h, w = ex.SMART_RESIZE_DIVERGENCE["size"]
    hf, qvu = smart_resize(h, w, 28, lo, hi, "hf"), smart_resize(h, w, 28, lo, hi, "qvu")
    out += ["### 2.5 smart_resize (SPEC-NOTES §1.1)", ""] + table(["input", "min_pixels", "max_pixels", "HF"], rows)
    out += [
        "",
        f"Variants: {h}×{w} with the released budgets gives {hf[0]}×{hf[1]} (HF) and {qvu[0]}×{qvu[1]} "
        "(qwen-vl-utils).",
        "",
    ]
    grid = [1, 20, 12]
    index, cu = windows.window_index([grid])
    cells = [len(win) for win in windows.windows([grid])]
    out += [
        "### 2.6 Windows and positions (SPEC-NOTES §3)",
        "",
        f"- grid_thw {nums(grid)} (merged 10×6): window sizes in cells {nums(cells)}, cu_window_seqlens "
        f"{nums(cu)}; window_index begins {nums(index[:20])}.",
    ]
    for side in (336, 448):
        g = [1, side // 14, side // 14]
        idx, _ = windows.window_index([g])
        same = np.array_equal(windows.inverse_permutation(idx), idx)
        out.append(
            f"- {side}×{side}: the inverse permutation {'equals' if same else 'differs from'} window_index "
            f"itself{' (a test on this size cannot see the bug)' if same else ''}."
        )
    pos = rope.rotary_position_ids([[1, 4, 4]])
    freqs = rope.inv_freq(80)
    out += [
        "- rotary_position_ids of grid [1, 4, 4], first 8 rows (row, col): "
        + ", ".join(f"({r}, {c})" for r, c in pos[:8])
        + ".",
        f"- inv_freq for head_dim 80: {len(freqs)} frequencies, {nums(freqs[:3], 6)} … {num(freqs[-1], 6)}.",
        "",
    ]
    return out


def section_configs() -> list[str]:
    """The document's configuration table beside the released config.json, discrepancies marked (SPEC-NOTES §5)."""
    from vitspec.cli import configs_rows
    from vitspec.spec.configs import DISCREPANCIES, DOCUMENT_TABLE, MODELS

    def cell(v):
        if v is None:
            return "—"
        return str(v).lower() if isinstance(v, bool) else str(v)

    by_key = {(r["field"], r["model"]): r for r in configs_rows()}
    rows = []
    for field in DOCUMENT_TABLE:
        cells = [field]
        for m in MODELS:
            r = by_key[(field, m)]
            mark = " **(!)**" if r["discrepancy"] else ""
            cells += [cell(r["document"]), cell(r["released"]) + mark]
        rows.append(cells)
    header = ["field"] + [f"{m} {side}" for m in MODELS for side in ("document", "released")]
    out = ["## 3. Configurations: the document vs the released config.json", ""] + table(header, rows)
    out += ["", "(!) marks a value that differs; — marks a row no config.json states. Recorded discrepancies:", ""]
    out += [f"- **{d['row']}** ({d['models']}): {d['explanation']}" for d in DISCREPANCIES]
    return out + [""]


def section_invariants() -> list[str]:
    """The invariant catalogue (spec/invariants.py) with the tests that check each, when the module exists."""
    out = ["## 4. Invariant catalogue", ""]
    try:
        catalogue = importlib.import_module("vitspec.invariant_scan").with_tests()
    except (ImportError, AttributeError):
        return out + ["spec/invariants.py is not present; this section is generated from it when it is.", ""]

    def tests_of(inv, *names):
        found = [getattr(inv, n) for n in names if getattr(inv, n, None)]
        items = [found[0]] if found and isinstance(found[0], str) else list(found[0]) if found else []
        return ", ".join(f"`{t}`" for t in items) or "—"

    rows = [
        [inv.id, f"`{inv.stage}`", inv.statement, tests_of(inv, "tests", "test"), tests_of(inv, "negative")]
        for inv in catalogue
    ]
    return out + table(["id", "stage", "statement", "checked by", "negative control"], rows) + [""]


def section_differences() -> list[str]:
    """Recorded differences between HF, qwen-vl-utils and vLLM (spec/differences.py, SPEC-NOTES §1 and §6)."""
    from vitspec.spec.differences import DIFFERENCES

    out = ["## 5. Where HF, qwen-vl-utils and vLLM differ", ""]
    for d in DIFFERENCES:
        out += [f"### {d.id} (`{d.stage}`): {d.topic}", ""]
        out += [f"- {source}: {text}" for source, text in d.behaviours]
        out += [f"- Choice: {d.choice}", f"- Observable by a user: {'yes' if d.observable else 'no'}.", ""]
    return out


def generate() -> str:
    """The whole of SPEC.md as text."""
    lines = [
        "# vitspec: the Qwen2.5-VL vision front-end specification",
        "",
        "Generated by `python -m vitspec.specmd` from spec/ and reference/; do not edit by hand "
        "(tests/test_specmd.py fails when this file is stale).",
        "",
        "Pipeline: " + " → ".join(PIPELINE) + ".",
        "",
    ]
    for part in (section_stages, section_examples, section_configs, section_invariants, section_differences):
        lines += part()
    while lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def check(path: Path) -> tuple[bool, str]:
    """(up to date?, a diff summary) for the file at path against generate()."""
    new = generate()
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if old == new:
        return True, f"{path} is up to date"
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), str(path), "generated", lineterm="", n=0))
    changed = sum(1 for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    head = "\n".join(diff[:40]) + ("\n…" if len(diff) > 40 else "")
    return False, (f"{path} differs from the generator ({changed} changed lines); run python -m vitspec.specmd\n{head}")


def in_checkout(path: Path) -> bool:
    """Whether path is the spec/SPEC.md of a source checkout (pyproject.toml beside spec/, not an installed copy)."""
    path = path.resolve()
    installed = any(part in ("site-packages", "dist-packages") for part in path.parts)
    return not installed and (path.parent.parent / "pyproject.toml").is_file()


def main(argv: list[str] | None = None) -> int:
    """Write (or --check) SPEC.md: the checkout's spec/SPEC.md by default, never an installed package's copy."""
    from vitspec.cli import Parser, UsageError

    p = Parser(
        prog="python -m vitspec.specmd",
        description="Generate spec/SPEC.md.",
        epilog="Exit codes: 0 written or up to date, 1 stale (--check), 2 bad arguments.",
    )
    p.add_argument("--check", action="store_true", help="exit 1 with a diff summary if the file is stale")
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"file to write or check (default {SPEC_MD}, only in a source checkout)",
    )
    try:
        args = p.parse_args(argv)
        if args.output is None:
            if not args.check and not in_checkout(SPEC_MD):
                raise UsageError(
                    f"{SPEC_MD} is an installed package's copy, not a checkout's spec/SPEC.md: "
                    "give --output FILE to write the document elsewhere"
                )
            args.output = SPEC_MD
        if not args.check and not args.output.resolve().parent.is_dir():
            raise UsageError(f"--output {str(args.output)!r}: the folder does not exist")
    except UsageError as e:
        print(f"python -m vitspec.specmd: error: {e}", file=sys.stderr)
        return 2
    if args.check:
        ok, message = check(args.output)
        print(message, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    args.output.write_text(generate(), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
