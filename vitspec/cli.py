"""The `vitspec` command line.

Verbs: explain (the pipeline for one image size), configs (document vs released), verify (run the suite on
a target), bench (impl vs HF side by side), mutants (the planted-bug catalogue).
Exit codes: 0 success; 1 a check failed (verify, mutants); 2 bad arguments or bad input (one-line error).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from vitspec.spec.configs import DISCREPANCIES, DOCUMENT_TABLE, MODELS, PREPROCESSOR, RELEASED_TABLE


class UsageError(ValueError):
    """Bad command-line input: printed as one line, exit code 2 (a ValueError, so every verb's handler takes it)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument raises UsageError (one line, exit 2) instead of printing the usage block."""

    def error(self, message):
        raise UsageError(message)


_Parser = Parser


def positive_int(text: str) -> int:
    """An argparse type: a positive integer, or a one-line error naming the rule."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def check_device(device: str | None, flag: str = "--device") -> None:
    """A usage error for a device this machine cannot run: an unknown device string, or CUDA without CUDA."""
    if device is None:
        return
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise UsageError(f"{flag} must be cpu, cuda or cuda:N, got {device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{flag} {device} requested, but this torch ({torch.__version__}) sees no CUDA device")
    index = torch.device(device).index
    if kind == "cuda" and index is not None and index >= torch.cuda.device_count():
        raise UsageError(f"{flag} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def check_output(output: str | None, flag: str = "--output") -> None:
    """A usage error, before any work, for an output file whose folder does not exist."""
    from pathlib import Path

    if output and not Path(output).resolve().parent.is_dir():
        raise UsageError(f"{flag} {output!r}: the folder does not exist")
    if output and Path(output).is_dir():
        raise UsageError(f"{flag} {output!r} is a folder: name a file")


def write_json(obj, output: str | None, to_stdout: bool) -> None:
    """The --json / --output convention of every verb: --json prints JSON to stdout, --output FILE writes it."""
    text = json.dumps(obj, indent=1)
    if to_stdout:
        print(text)
    if output:
        try:
            with open(output, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError as e:
            raise UsageError(f"--output {output!r} cannot be written ({e.strerror})") from None


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' with positive integers, e.g. 1080x1920."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text or "")
    if not m:
        raise UsageError(f"size must be written HEIGHTxWIDTH with positive integers, e.g. 1080x1920, got {text!r}")
    h, w = int(m.group(1)), int(m.group(2))
    if h <= 0 or w <= 0:
        raise UsageError(f"size must have a positive height and width, got {text!r}")
    return h, w


def explain(height: int, width: int, min_pixels: int, max_pixels: int, frames: int = 1, variant: str = "hf") -> dict:
    """Every count of the pipeline for one image (or a video of `frames` frames) of the given size."""
    from vitspec.reference import TARGET, tokens, windows

    rh, rw = TARGET.smart_resize(height, width, 28, min_pixels, max_pixels, variant)  # its input rules applied
    if rh == 0 or rw == 0:
        raise UsageError(
            f"smart_resize (variant {variant}) gives {rh}x{rw} for {height}x{width} with max_pixels "
            f"{max_pixels}: a side of 0 (qwen-vl-utils floors it), so no patch; raise --max-pixels"
        )
    T, P = PREPROCESSOR["temporal_patch_size"], PREPROCESSOR["patch_size"]
    grid = [-(-frames // T), rh // P, rw // P]
    _, cu_window = windows.window_index([grid])
    cu_full = windows.cu_seqlens([grid])
    sizes = [int(s) for s in (cu_window[1:] - cu_window[:-1])]
    n_tokens = int(tokens.num_image_tokens([grid])[0])
    return {
        "height": height,
        "width": width,
        "frames": frames,
        "resized_height": rh,
        "resized_width": rw,
        "grid_thw": grid,
        "num_patches": grid[0] * grid[1] * grid[2],
        "values_per_patch": 3 * T * P * P,
        "num_windows": len(sizes),
        "window_sizes": sizes,
        "full_attention_segments": [int(s) for s in (cu_full[1:] - cu_full[:-1])],
        "num_tokens": n_tokens,
        "placeholder_tokens": n_tokens + 2,
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
        "variant": variant,
    }


def _runs(sizes: list[int]) -> str:
    """[64, 64, 64, 32] -> '3×64, 32'."""
    parts, i = [], 0
    while i < len(sizes):
        j = i
        while j < len(sizes) and sizes[j] == sizes[i]:
            j += 1
        parts.append(f"{j - i}×{sizes[i]}" if j - i > 1 else str(sizes[i]))
        i = j
    return ", ".join(parts)


def format_explain(d: dict) -> str:
    """Human-readable lines for explain()."""
    g = d["grid_thw"]
    return "\n".join(
        [
            f"input            {d['height']}×{d['width']}" + (f", {d['frames']} frames" if d["frames"] > 1 else ""),
            f"smart_resize     {d['resized_height']}×{d['resized_width']} (multiples of 28; pixels in "
            f"[{d['min_pixels']}, {d['max_pixels']}], variant {d['variant']})",
            f"grid_thw         [{g[0]}, {g[1]}, {g[2]}] (patches of 14×14; t = ceil(frames / 2))",
            f"patches          {d['num_patches']} rows of {d['values_per_patch']} values (C, T, P, P)",
            f"windows          {d['num_windows']} windows, patches each: {_runs(d['window_sizes'])}",
            f"full attention   {len(d['full_attention_segments'])} segment(s) of {_runs(d['full_attention_segments'])} patches",
            f"merged tokens    {d['num_tokens']} (= t·h·w / 4)",
            f"prompt tokens    {d['placeholder_tokens']} (vision_start + {d['num_tokens']} image_pad + vision_end)",
        ]
    )


def configs_rows() -> list[dict]:
    """The document's table beside the released values, one row per field and model (SPEC-NOTES §5).

    "discrepancy" flags a released value that differs from the document's; a row no config.json states
    (released None, e.g. trained_tokens) has "in_config" false and is not a value discrepancy.
    """
    flagged = {(d["row"], m.strip()) for d in DISCREPANCIES for m in d["models"].split(",")}
    rows = []
    for field in DOCUMENT_TABLE:
        for m in MODELS:
            doc, rel = DOCUMENT_TABLE[field][m], RELEASED_TABLE[field][m]
            rows.append(
                {
                    "field": field,
                    "model": m,
                    "document": doc,
                    "released": rel,
                    "in_config": rel is not None,
                    "discrepancy": (field, m) in flagged and rel is not None and rel != doc,
                }
            )
    return rows


def format_configs() -> str:
    """The configs table as text, discrepancies marked with '!' and explained below."""
    lines = [f"{'field':24} " + " ".join(f"{m + ' doc':>12} {m + ' released':>14}" for m in MODELS)]
    rows = configs_rows()
    for field in DOCUMENT_TABLE:
        cells = []
        for r in (r for r in rows if r["field"] == field):
            mark = "!" if r["discrepancy"] else " "
            released = str(r["released"]) if r["in_config"] else "—"
            cells.append(f"{str(r['document']):>12} {released:>13}{mark}")
        lines.append(f"{field:24} " + " ".join(cells))
    lines.append("")
    lines.append(
        "! marks a value that differs between the document and the released config.json; "
        "— marks a row no config.json states. Notes:"
    )
    for d in DISCREPANCIES:
        lines.append(f"- {d['row']} ({d['models']}): {d['explanation']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="vitspec",
        description="The Qwen2.5-VL vision front-end specification: explain an image size, compare the "
        "document's configs with the released ones, verify a target, benchmark, run mutants.",
        epilog="Exit codes: 0 success, 1 a check failed, 2 bad arguments or input.",
    )
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    e = sub.add_parser(
        "explain",
        help="the pipeline's counts for an image size",
        description="Resized size, grid_thw, patches, windows, segments and tokens for an image of HxW.",
    )
    e.add_argument(
        "size",
        nargs="?",
        help="HEIGHTxWIDTH of the input image, e.g. 1080x1920 (with --image: read from the picture when not given)",
    )
    e.add_argument(
        "--min-pixels",
        type=int,
        default=PREPROCESSOR["min_pixels"],
        help=f"pixel budget floor (default {PREPROCESSOR['min_pixels']}, released preprocessor config)",
    )
    e.add_argument(
        "--max-pixels",
        type=int,
        default=PREPROCESSOR["max_pixels"],
        help=f"pixel budget ceiling (default {PREPROCESSOR['max_pixels']}, released preprocessor config)",
    )
    e.add_argument("--frames", type=int, default=1, help="number of video frames (default 1: a still image)")
    e.add_argument(
        "--variant",
        choices=["hf", "qvu"],
        default="hf",
        help="smart_resize semantics: HF transformers (default) or qwen-vl-utils",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object to stdout instead of text")
    e.add_argument("--output", metavar="FILE", help="also write the JSON object to FILE")
    e.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw the resized image's patches (14 px), 2x2 merge groups (28 px) and numbered 112-px "
        "windows with their patch counts to a PNG, with axes in pixels and patches and a legend: "
        "s PNG px per image px (s = the largest integer <= 8 keeping the longest side <= 2000 px; "
        "larger images are shrunk to 2000 px)",
    )
    e.add_argument(
        "--image",
        metavar="PATH",
        help="draw over this picture (its size is the input size unless HEIGHTxWIDTH is given, which must "
        "match), converted to RGB and resized with the reference bicubic as the model would; "
        "without --plot the PNG is written to ./<picture name>.vitspec.png",
    )
    c = sub.add_parser("configs", help="the document's configuration table beside the released config.json values")
    c.add_argument("--json", action="store_true", help="print JSON rows to stdout instead of a table")
    c.add_argument("--output", metavar="FILE", help="also write the JSON rows to FILE")
    for verb, helptext in (
        ("verify", "run the property suite on a target and print a per-stage report"),
        ("bench", "time impl against HF transformers side by side"),
        ("mutants", "run the suite against every planted-bug mutant and print the kill matrix"),
        ("ports", "verify real ports across their released versions into docs/PORTS.md"),
    ):
        sub.add_parser(verb, help=helptext, add_help=False)
    return p


def _explain(args) -> int:
    if args.size is None and not args.image:
        raise UsageError("give the image size HEIGHTxWIDTH (e.g. 1080x1920), or a picture with --image")
    if args.size is None:
        from vitspec.plot import picture_size

        h, w = picture_size(args.image)
    else:
        h, w = parse_size(args.size)
    if args.image and not args.plot:
        from pathlib import Path

        args.plot = Path(args.image).stem + ".vitspec.png"
    for name in ("min_pixels", "max_pixels", "frames"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    d = explain(h, w, args.min_pixels, args.max_pixels, args.frames, args.variant)
    if args.plot:
        from vitspec.plot import plot_explain

        geo = plot_explain(d, args.plot, image_path=args.image)
        from pathlib import Path

        d["plot"] = str(Path(args.plot).resolve())
        d["plot_size"] = [geo["png_height"], geo["png_width"]]
    if not args.json:
        print(
            format_explain(d)
            + (
                f"\nplot             wrote {d['plot']} ({d['plot_size'][1]}×{d['plot_size'][0]} px PNG)"
                if args.plot
                else ""
            )
        )
    write_json(d, args.output, args.json)
    return 0


DISPATCHED = {
    "verify": "vitspec.verify",
    "bench": "vitspec.bench",
    "mutants": "vitspec.mutants.gate",
    "ports": "vitspec.ports",
}


def _run(argv: list[str]) -> int:
    if argv and argv[0] in DISPATCHED:
        import importlib

        try:
            return importlib.import_module(DISPATCHED[argv[0]]).main(argv[1:])
        except UsageError as e:  # a verb's own handler should have printed it; never a traceback
            print(f"vitspec {argv[0]}: error: {e}", file=sys.stderr)
            return 2
    parser = build_parser()
    verb = argv[0] if argv and argv[0] in ("explain", "configs") else None
    try:
        args = parser.parse_args(argv)
        verb = args.verb
        if args.verb in ("explain", "configs"):
            check_output(args.output)
        if args.verb == "explain":
            return _explain(args)
        if args.verb == "configs":
            rows = configs_rows()
            if not args.json:
                print(format_configs())
            write_json(rows, args.output, args.json)
            return 0
        parser.print_help()
        return 2
    except (UsageError, ValueError, TypeError) as e:
        print(f"vitspec{' ' + verb if verb else ''}: error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Run one verb; a reader that stops early (`vitspec configs | head -3`) ends the output quietly."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _run(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the reader closed the pipe: drop what is left unwritten, as the Unix tools do
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("vitspec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
