"""One script for a GPU machine: impl's CUDA correctness, then the side-by-side benchmark against HF.

Run from the repository root: `python3 vitspec/gpu_check.py` (or `--smoke` on a CPU for a tiny rehearsal).
1. Small configs against the float64 NumPy reference on grids with partial windows, several windows,
   t > 1 and batches, in float32, bfloat16 and float16, eager and through the fixed-grid (CUDA graph) path,
   with HF in the same dtype as the baseline for the half-precision errors.
2. The 7B vision config (depth 32) against impl in float64 on the same device, HF bf16 as the baseline.
3. The benchmark table (bf16, depth 32) with CUDA graph rows; JSON and markdown go to $OUT when set.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

try:
    import scipy.special  # noqa: F401  (the reference's erf and expit)
except ImportError:  # a bare machine: the few scipy functions the reference needs, from NumPy
    special = types.ModuleType("scipy.special")
    special.expit = lambda x: 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))
    special.erf = np.vectorize(math.erf, otypes=[np.float64])
    sys.modules["scipy"] = types.ModuleType("scipy")
    sys.modules["scipy"].special = special
    sys.modules["scipy.special"] = special

import torch  # noqa: E402

from vitspec import reference  # noqa: E402
from vitspec.bench import (  # noqa: E402
    bench_towers,
    hf_merged,
    hf_tower,
    log,
    pixel_columns,
    random_weights as torch_random_weights,  # noqa: E402
    rel_err,
    table,
    tower_config,
)
from vitspec.impl import TorchTarget  # noqa: E402
from vitspec.reference.block import vision_block as reference_block  # noqa: E402
from vitspec.reference.weights import random_weights  # noqa: E402
from vitspec.spec.configs import small_config  # noqa: E402

GRIDS = ([[1, 16, 16]], [[1, 20, 12]], [[1, 36, 28]], [[2, 12, 20]], [[1, 8, 8], [1, 20, 12], [2, 16, 28]], [[1, 2, 2]])
FP32_LIMIT = 1e-5  # float32 against float64: measured ~5e-7 on the CPU
HALF_FACTOR = 2.0  # a half-precision result passes when its error is at most this times HF's in the same dtype


class Report:
    """Collects check lines and failures, prints as it goes."""

    def __init__(self):
        self.lines, self.failures, self.t0 = [], [], time.time()

    def check(self, name: str, value: float, limit: float) -> None:
        """Record value <= limit as PASS or FAIL."""
        ok = value <= limit
        line = f"{'PASS' if ok else 'FAIL'} {name}: {value:.3e} (limit {limit:.3e})  [{time.time() - self.t0:.0f}s]"
        self.lines.append(line)
        print(line, flush=True)
        if not ok:
            self.failures.append(line)


def grid_input(grid, seed: int) -> np.ndarray:
    """Random non-zero pixel_values for a grid."""
    n = sum(t * h * w for t, h, w in grid)
    return np.random.default_rng(seed).standard_normal((n, 1176))


def small_against_reference(report: Report, device: str, grids) -> None:
    """impl on device against the NumPy reference (small config with two full-attention blocks)."""
    cfg = small_config(depth=4, fullatt_block_indexes=(1, 3))
    weights = random_weights(cfg, seed=1)
    hf = {
        dt: hf_tower(cfg, {k: torch.from_numpy(v).float() for k, v in weights.items()}, getattr(torch, dt), device)
        for dt in ("bfloat16", "float16")
    }
    for i, grid in enumerate(grids):
        pv = grid_input(grid, i)
        truth = torch.from_numpy(reference.TARGET.vision_tower(pv, grid, weights, cfg))
        for dt in ("float32", "bfloat16", "float16"):
            target = TorchTarget(device, dt)
            err = rel_err(target.vision_tower(pv, grid, weights, cfg).cpu(), truth)
            graphed = rel_err(target.vision_tower(pv, grid, weights, cfg, cuda_graph=True).cpu(), truth)
            if dt == "float32":
                limit = FP32_LIMIT
            else:
                with torch.inference_mode():
                    x = torch.from_numpy(pv).to(device=device, dtype=getattr(torch, dt))
                    base = rel_err(hf_merged(hf[dt], x, torch.tensor(grid, device=device)).cpu(), truth)
                limit = HALF_FACTOR * base
            report.check(f"small {grid} {dt} eager", err, limit)
            report.check(f"small {grid} {dt} graph", graphed, limit)
            target.clear_caches()


def stages_against_reference(report: Report, device: str) -> None:
    """Stage checks on device: segments with a zero-length entry and arbitrary cos/sin in one block."""
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((240, 4, 16)) for _ in range(3))
    cu = np.array([0, 10, 10, 50, 60, 100, 140, 240])
    target = TorchTarget(device, "float32")
    truth = reference.TARGET.attention(q, k, v, np.unique(cu))
    report.check(
        "attention odd segments float32",
        rel_err(target.attention(q, k, v, cu).cpu(), torch.from_numpy(truth)),
        FP32_LIMIT,
    )
    cfg = small_config(depth=1, fullatt_block_indexes=(0,))
    params = {k[len("blocks.0.") :]: v for k, v in random_weights(cfg, 2).items() if k.startswith("blocks.0.")}
    x, cos, sin = rng.standard_normal((240, 64)), rng.standard_normal((240, 16)), rng.standard_normal((240, 16))
    truth = reference_block(x, params, np.unique(cu), (cos, sin), 4)  # the reference's math takes either form
    out = target.with_options(rotary="cos_sin").vision_block(x, params, cu, (cos, sin), 4)
    report.check("vision_block arbitrary cos/sin float32", rel_err(out.cpu(), torch.from_numpy(truth)), FP32_LIMIT)
    angles = 30 * rng.standard_normal((240, 8))
    truth = reference.TARGET.vision_block(x, params, np.unique(cu), angles, 4)
    out = target.vision_block(x, params, cu, angles, 4)
    report.check("vision_block angles float32", rel_err(out.cpu(), torch.from_numpy(truth)), FP32_LIMIT)


def full_size_check(report: Report, device: str, depth: int, grids) -> None:
    """7B vision config: impl bf16 / fp32 and HF bf16 against impl float64 on the same device."""
    cfg = tower_config(depth, device)
    weights = torch_random_weights(cfg, 3, device)
    model = hf_tower(cfg, weights, torch.bfloat16, device)
    truth_target, bf16, fp32 = (TorchTarget(device, dt) for dt in ("float64", "bfloat16", "float32"))
    for i, grid in enumerate(grids):
        n = sum(t * h * w for t, h, w in grid)
        pv = torch.randn(n, pixel_columns(cfg), generator=torch.Generator(device).manual_seed(i), device=device)
        with torch.inference_mode():
            truth = truth_target.vision_tower(pv, grid, weights, cfg)
            truth_target.clear_caches()
            base = rel_err(hf_merged(model, pv.bfloat16(), torch.tensor(grid, device=device)), truth)
            report.check(
                f"7B depth {depth} {grid} float32 vs float64",
                rel_err(fp32.vision_tower(pv, grid, weights, cfg), truth),
                FP32_LIMIT,
            )
            fp32.clear_caches()
            report.check(
                f"7B depth {depth} {grid} bfloat16 eager (HF bf16 {base:.2e})",
                rel_err(bf16.vision_tower(pv, grid, weights, cfg), truth),
                HALF_FACTOR * base,
            )
            report.check(
                f"7B depth {depth} {grid} bfloat16 graph",
                rel_err(bf16.vision_tower(pv, grid, weights, cfg, cuda_graph=True), truth),
                HALF_FACTOR * base,
            )
            bf16.clear_caches()
    del model


def profile_tower(size, device: str, depth: int) -> str:
    """Operator table (device time) of one eager bf16 impl pass at one size, after warm-up."""
    cfg = tower_config(depth, device)
    weights = torch_random_weights(cfg, 0, device)
    grid = [[1, size[0] // 14, size[1] // 14]]
    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    target = TorchTarget(device, dtype)
    pv = torch.randn(grid[0][1] * grid[0][2], pixel_columns(cfg), device=device)
    for _ in range(2):
        target.vision_tower(pv, grid, weights, cfg)
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if device.startswith("cuda") else []
    )
    with torch.profiler.profile(activities=activities) as prof:
        target.vision_tower(pv, grid, weights, cfg)
        torch.cuda.synchronize() if device.startswith("cuda") else None
    target.clear_caches()
    key = "self_device_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=60)


def environment(device: str) -> dict:
    """Card, versions and date for the results header."""
    import transformers

    card = torch.cuda.get_device_name(device) if device.startswith("cuda") else (platform.processor() or "cpu")
    return {
        "device": card,
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def main(argv=None) -> int:
    """Correctness checks, then the benchmark; exit status 1 when a check fails."""
    from vitspec.bench import parse_sizes
    from vitspec.cli import Parser, UsageError, positive_int

    p = Parser(
        prog="python -m vitspec.gpu_check",
        description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 every check passed, 1 a check failed, 2 bad arguments or no CUDA device.",
    )
    p.add_argument("--smoke", action="store_true", help="tiny sizes and depth on the CPU (rehearsal)")
    p.add_argument("--compile", action="store_true", help="add rows with torch.compile'd element-wise parts")
    p.add_argument("--profile", action="store_true", help="print an operator profile of impl at the largest size")
    p.add_argument("--repeats", type=positive_int, default=None, help="timed runs per side (default 2 smoke, 10)")
    p.add_argument("--sizes", default=None, help="HxW list in multiples of 28, e.g. 448x336,896x672")
    try:
        args = p.parse_args(argv)
        sizes = parse_sizes(args.sizes or ("224x168" if args.smoke else "448x336,896x672,1344x1008,2016x1512"))
        if not args.smoke and not torch.cuda.is_available():
            raise UsageError("no CUDA device: run with --smoke on a CPU")
    except UsageError as e:
        print(f"python -m vitspec.gpu_check: error: {e}", file=sys.stderr)
        return 2
    device = "cpu" if args.smoke else "cuda"
    out_dir = os.environ.get("OUT")
    env = environment(device)
    print(json.dumps(env), flush=True)
    report = Report()
    log("[gpu_check] 1. small configs against the float64 reference")
    small_against_reference(report, device, GRIDS[:2] + GRIDS[3:5] if args.smoke else GRIDS)
    stages_against_reference(report, device)
    log("[gpu_check] 2. 7B config against impl float64")
    full_size_check(
        report,
        device,
        2 if args.smoke else 32,
        [[[1, 8, 12]]] if args.smoke else [[[1, 32, 24]], [[1, 16, 16], [2, 20, 12]]],
    )
    torch.cuda.empty_cache() if device == "cuda" else None
    log("[gpu_check] 3. benchmark")
    cfg = tower_config(2 if args.smoke else 32, device)
    repeats = args.repeats or (2 if args.smoke else 10)
    rows = bench_towers(sizes, cfg, "float32" if args.smoke else "bfloat16", device, repeats)
    if args.compile:
        rows += bench_towers(sizes, cfg, "float32" if args.smoke else "bfloat16", device, repeats, compile=True)
    text = table(rows)
    if args.profile:
        log("[gpu_check] 4. profile")
        profile = profile_tower(max(sizes, key=lambda s: s[0] * s[1]), device, cfg["depth"])
        print(profile)
        text += "\n\n```\n" + profile + "\n```"
    print(text)
    print(f"{len(report.failures)} correctness failures; total {time.time() - report.t0:.0f}s")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "gpu_check.json"), "w") as f:
            json.dump({"environment": env, "checks": report.lines, "rows": rows}, f, indent=1)
        with open(os.path.join(out_dir, "gpu_check.md"), "w") as f:
            f.write(f"{env}\n\n" + "\n".join(report.lines) + "\n\n" + text + "\n")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
