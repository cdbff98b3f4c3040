"""Side-by-side benchmark of impl against HF transformers in one process: vision tower and preprocessing.

Each row times both implementations on the same random weights and the same random non-zero input
(warm-up first, then alternating runs, medians, a device synchronize before every clock read) and
reports ratio = hf_ms / impl_ms (above 1: impl is faster). impl_rel_err and hf_rel_err are the relative
L2 errors of each merged output against a float64 run of impl with the same weights and input.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time

import numpy as np
import torch

from vitspec.cli import Parser, UsageError, check_device, check_output, positive_int, write_json
from vitspec.impl import TorchTarget
from vitspec.impl.windows import window_cells, window_layout
from vitspec.reference.weights import expected_shapes
from vitspec.spec.configs import PREPROCESSOR, VISION_FIELDS, vision_config

HF_FIELDS = VISION_FIELDS + ("hidden_act",)  # the vision config fields HF's Qwen2_5_VLVisionConfig takes


def log(msg: str) -> None:
    """A progress line on stderr."""
    print(msg, file=sys.stderr, flush=True)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'448x336,896x672' -> [(448, 336), (896, 672)] (height x width in pixels, positive multiples of 28)."""
    sizes = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", part)
        if not m:
            raise UsageError(
                f"--sizes must be a comma-separated list of HEIGHTxWIDTH, e.g. 448x336,896x672, got {part!r}"
            )
        h, w = int(m.group(1)), int(m.group(2))
        if h <= 0 or w <= 0 or h % 28 or w % 28:
            raise UsageError(f"--sizes: height and width must be positive multiples of 28, got {part!r}")
        sizes.append((h, w))
    return sizes


def tower_config(depth: int | None, device: str) -> dict:
    """The 7B vision config, depth overridden (CPU default 8 with one full-attention block at 7)."""
    cfg = vision_config("7B")
    if depth is None:
        depth = 32 if device.startswith("cuda") else 8
    if depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth}")
    cfg["depth"] = depth
    full = [i for i in cfg["fullatt_block_indexes"] if i < depth]
    cfg["fullatt_block_indexes"] = full or [depth - 1]
    return cfg


def pixel_columns(config: dict) -> int:
    """Values per pixel_values row: channels * temporal_patch_size * patch_size**2 (1176)."""
    return config["in_channels"] * config["temporal_patch_size"] * config["patch_size"] ** 2


def tower_flops(rows, config: dict) -> float:
    """Matmul and attention FLOPs of one tower pass (2 per multiply-add; QK^T and PV both counted)."""
    D, I, out = config["hidden_size"], config["intermediate_size"], config["out_hidden_size"]
    m, P = config["spatial_merge_size"], config["patch_size"]
    K = pixel_columns(config)
    unit = m * m
    N = sum(t * h * w for t, h, w in rows)
    side = window_cells(config["window_size"], P, m)
    window_sq = float(np.sum((window_layout(rows, side, m)[1] * unit).astype(np.float64) ** 2))
    full_sq = float(sum(t * (h * w) ** 2 for t, h, w in rows))
    n_full = len(config["fullatt_block_indexes"])
    attn = 4.0 * D * (n_full * full_sq + (config["depth"] - n_full) * window_sq)
    linears = 2.0 * N * (K * D + config["depth"] * D * (3 * D + D + 3 * I))
    merger = 2.0 * (N // unit) * (unit * D) * (unit * D + out)
    return linears + attn + merger


def random_weights(config: dict, seed: int, device) -> dict:
    """Seeded float32 weights on device, scaled as vitspec.reference.weights.random_weights scales them."""
    gen = torch.Generator(device=device).manual_seed(seed)
    out = {}
    for key, shape in expected_shapes(config).items():
        x = torch.randn(shape, generator=gen, device=device)
        if key.endswith(("norm1.weight", "norm2.weight", "ln_q.weight")):
            x = 1.0 + 0.1 * x
        elif key.endswith(".bias"):
            x = 0.02 * x
        else:
            x = x / float(np.prod(shape[1:])) ** 0.5
            if key.endswith(("attn.proj.weight", "down_proj.weight")):
                x = x / (2.0 * config["depth"]) ** 0.5
        out[key] = x
    return out


def hf_tower(config: dict, weights: dict, dtype: torch.dtype, device):
    """HF's Qwen2_5_VisionTransformerPretrainedModel (sdpa) holding the same weights, in dtype on device."""
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    hf_cfg = Qwen2_5_VLVisionConfig(**{k: config[k] for k in HF_FIELDS})
    with torch.device(device):
        model = Qwen2_5_VisionTransformerPretrainedModel._from_config(hf_cfg, attn_implementation="sdpa", dtype=dtype)
    model.load_state_dict({k: v for k, v in weights.items()}, strict=True)
    return model.to(device).eval()


def hf_merged(model, pixel_values, grid) -> torch.Tensor:
    """The merged, raster-ordered output of HF's vision model (pooler_output in transformers 5)."""
    out = model(pixel_values, grid_thw=grid)
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def synchronize(device) -> None:
    """Wait for queued device work before a clock is read."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(fn_a, fn_b, device, repeats: int, warmup: int = 1) -> tuple[float, float]:
    """Median milliseconds of two callables, warmed up, then run alternately."""
    for _ in range(warmup):
        fn_a(), fn_b()
    times = ([], [])
    for _ in range(repeats):
        for fn, acc in ((fn_a, times[0]), (fn_b, times[1])):
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            acc.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def rel_err(x: torch.Tensor, truth: torch.Tensor) -> float:
    """Relative L2 error ||x - truth|| / ||truth|| in float64."""
    x, truth = x.double(), truth.double()
    return float(torch.linalg.vector_norm(x - truth) / torch.linalg.vector_norm(truth))


def bench_towers(
    sizes, config, dtype: str, device: str, repeats: int, cuda_graph: bool = True, compile: bool = False, seed: int = 0
) -> list[dict]:
    """Tower rows (and tower_cuda_graph rows on CUDA) for each image size."""
    target = TorchTarget(device, dtype, compile=compile)
    tdtype = target.torch_dtype
    weights = random_weights(config, seed, device)
    log(f"[bench] building HF model (depth {config['depth']}, {dtype}, {device})")
    model = hf_tower(config, weights, tdtype, device)
    truth_target = TorchTarget(device, "float64")
    stage = "tower_compiled" if compile else "tower"
    rows = []
    for h, w in sizes:
        grid_rows = [(1, h // config["patch_size"], w // config["patch_size"])]
        n = grid_rows[0][1] * grid_rows[0][2]
        gen = torch.Generator(device=device).manual_seed(seed + n)
        pv = torch.randn(n, pixel_columns(config), generator=gen, device=device).to(tdtype)
        grid = torch.tensor(grid_rows, dtype=torch.int64, device=device)
        log(f"[bench] {h}x{w}: {n} patches, float64 truth")
        with torch.inference_mode():
            truth = truth_target.vision_tower(pv, grid_rows, weights, config)
            truth_target.clear_caches()
            impl_out = target.vision_tower(pv, grid_rows, weights, config)
            hf_out = hf_merged(model, pv, grid)
            errs = {"impl_rel_err": rel_err(impl_out, truth), "hf_rel_err": rel_err(hf_out, truth)}
            log(f"[bench] {h}x{w}: timing impl vs HF ({repeats} runs)")
            impl_ms, hf_ms = time_pair(
                lambda pv=pv, g=grid_rows: target.vision_tower(pv, g, weights, config),
                lambda pv=pv, grid=grid: hf_merged(model, pv, grid),
                device,
                repeats,
            )
            rows.append(make_row(stage, h, w, n, impl_ms, hf_ms, errs, config, grid_rows, dtype, device))
            log(progress(rows[-1]))
            if cuda_graph and device.startswith("cuda"):
                log(f"[bench] {h}x{w}: capturing CUDA graph")
                graphed = target.fixed_grid_tower(grid_rows, weights, config)
                errs = dict(errs, impl_rel_err=rel_err(graphed(pv), truth))
                g_ms, hf_ms = time_pair(
                    lambda f=graphed, pv=pv: f(pv), lambda pv=pv, grid=grid: hf_merged(model, pv, grid), device, repeats
                )
                rows.append(
                    make_row(stage + "_cuda_graph", h, w, n, g_ms, hf_ms, errs, config, grid_rows, dtype, device)
                )
                log(progress(rows[-1]))
                del graphed
            target.clear_caches()
    return rows


def progress(row: dict) -> str:
    """One stderr line per measured row."""
    return (
        f"[bench] {row['stage']} {row['size']}: impl {row['impl_ms']:.2f} ms, HF {row['hf_ms']:.2f} ms "
        f"(ratio {row['ratio']:.2f})"
    )


def make_row(stage, h, w, n, impl_ms, hf_ms, errs, config, grid_rows, dtype, device) -> dict:
    """One result row."""
    flops = tower_flops(grid_rows, config)
    return {
        "stage": stage,
        "size": f"{h}x{w}",
        "patches": n,
        "impl_ms": round(impl_ms, 3),
        "hf_ms": round(hf_ms, 3),
        "ratio": round(hf_ms / impl_ms, 3),
        "impl_rel_err": errs.get("impl_rel_err"),
        "hf_rel_err": errs.get("hf_rel_err"),
        "tflops": round(flops / impl_ms / 1e9, 2),
        "device": device,
        "dtype": dtype,
        "depth": config["depth"],
    }


def bench_preprocess(repeats: int, seed: int = 0) -> list[dict]:
    """impl preprocess vs HF's PIL image processor on one random 1080x1920 image (host, both)."""
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    try:
        from vitspec.impl.pixels import preprocess
    except ImportError as e:
        log(f"[bench] preprocess skipped: {e}")
        return []
    image = np.random.default_rng(seed).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    pil = Image.fromarray(image)
    lo, hi = PREPROCESSOR["min_pixels"], PREPROCESSOR["max_pixels"]
    processor = Qwen2VLImageProcessorPil(min_pixels=lo, max_pixels=hi)
    run_impl = lambda: preprocess([image], image_min_pixels=lo, image_max_pixels=hi)  # noqa: E731
    run_hf = lambda: processor(images=[pil], return_tensors="np")  # noqa: E731
    log("[bench] preprocess 1080x1920")
    impl_pv, impl_grid = run_impl()
    hf_pv = np.asarray(run_hf()["pixel_values"], dtype=np.float64)
    impl_pv = np.asarray(impl_pv.detach().cpu() if hasattr(impl_pv, "detach") else impl_pv, dtype=np.float64)
    diff = float(np.linalg.norm(impl_pv - hf_pv) / np.linalg.norm(hf_pv)) if impl_pv.shape == hf_pv.shape else None
    impl_ms, hf_ms = time_pair(run_impl, run_hf, "cpu", repeats)
    rows = [
        {
            "stage": "preprocess",
            "size": "1080x1920",
            "patches": int(impl_pv.shape[0]),
            "impl_ms": round(impl_ms, 3),
            "hf_ms": round(hf_ms, 3),
            "ratio": round(hf_ms / impl_ms, 3),
            "impl_rel_err": diff,
            "hf_rel_err": None,
            "tflops": None,
            "device": "cpu",
            "dtype": "float32",
            "depth": None,
        }
    ]
    log(progress(rows[-1]))
    # the resize inside it: impl's CPU resampler against Pillow's Image.resize (the call HF's processor makes)
    from vitspec.impl.resize import resize

    height, width = (int(v) * 14 for v in impl_grid[0, 1:])
    log(f"[bench] resize 1080x1920 -> {height}x{width}")
    run_resize = lambda: resize(image, height, width)  # noqa: E731
    run_pillow = lambda: pil.resize((width, height), Image.Resampling.BICUBIC)  # noqa: E731
    same = np.array_equal(run_resize().numpy(), np.asarray(run_pillow()))
    impl_ms, hf_ms = time_pair(run_resize, run_pillow, "cpu", repeats)
    rows.append(
        {
            "stage": "resize (Pillow)",
            "size": "1080x1920",
            "patches": int(impl_pv.shape[0]),
            "impl_ms": round(impl_ms, 3),
            "hf_ms": round(hf_ms, 3),
            "ratio": round(hf_ms / impl_ms, 3),
            "impl_rel_err": 0.0 if same else None,
            "hf_rel_err": None,
            "tflops": None,
            "device": "cpu",
            "dtype": "uint8",
            "depth": None,
        }
    )
    log(progress(rows[-1]))
    return rows


def table(rows: list[dict]) -> str:
    """A markdown table of result rows."""
    head = "| stage | image (h×w) | patches | impl ms | HF ms | ratio (HF/impl) | TFLOP/s | impl rel err | HF rel err |"
    lines = [head, "|" + "---|" * 9]
    fmt = lambda v: "—" if v is None else f"{v:.2e}"  # noqa: E731
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['size']} | {r['patches']} | {r['impl_ms']:.2f} | {r['hf_ms']:.2f} | "
            f"{r['ratio']:.2f} | {'—' if r['tflops'] is None else r['tflops']} | {fmt(r['impl_rel_err'])} | "
            f"{fmt(r['hf_rel_err'])} |"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The vitspec bench options (a bad one raises UsageError)."""
    p = Parser(
        prog="vitspec bench",
        description=__doc__.splitlines()[0],
        epilog="Progress goes to stderr, a line per measured row. Exit codes: 0 done, 2 bad arguments.",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="model dtype (default float32 on cpu, bfloat16 on cuda)",
    )
    p.add_argument("--depth", type=positive_int, default=None, help="tower depth (default 8 on cpu, 32 on cuda)")
    p.add_argument("--sizes", default=None, help="HxW list, e.g. 448x336,896x672 (default 448x448 on cpu)")
    p.add_argument(
        "--repeats", type=positive_int, default=None, help="timed runs per side (default 3 on cpu, 10 on cuda)"
    )
    p.add_argument("--json", action="store_true", help="print the result rows as JSON to stdout instead of the table")
    p.add_argument("--output", metavar="FILE", default=None, help="also write the result rows as JSON to FILE")
    p.add_argument("--no-preprocess", action="store_true", help="skip the preprocessing row")
    p.add_argument("--compile", action="store_true", help="also time impl with torch.compile'd element-wise parts")
    return p


def main(argv=None) -> int:
    """vitspec bench: print the side-by-side table (or JSON rows with --json); --output writes the rows to a file."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(argv)
        check_device(args.device)
        cuda = args.device.startswith("cuda")
        dtype = args.dtype or ("bfloat16" if cuda else "float32")
        sizes = parse_sizes(args.sizes or ("448x336,896x672,1344x1008,2016x1512" if cuda else "448x448"))
        check_output(args.output)
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise UsageError("bench compares against HF transformers: pip install 'vitspec[upstream]'") from None
    except UsageError as e:
        print(f"vitspec bench: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    repeats = args.repeats or (10 if cuda else 3)
    config = tower_config(args.depth, args.device)
    log(
        f"[bench] {len(sizes)} size(s), depth {config['depth']}, {repeats} timed runs per side, {dtype} on "
        f"{args.device}"
    )
    rows = bench_towers(sizes, config, dtype, args.device, repeats)
    if args.compile:
        rows += bench_towers(sizes, config, dtype, args.device, repeats, compile=True)
    if not args.no_preprocess:
        rows += bench_preprocess(max(3, min(repeats, 5)))
    if not args.json:
        print(table(rows))
    try:
        write_json(rows, args.output, args.json)
    except UsageError as e:
        print(f"vitspec bench: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
