"""Measure the numbers behind tests/tolerance.py: run the differential tests with a recording comparison.

    python -m vitspec.tests.measure_tolerance --target vitspec.impl:TARGET --dtype float32 --examples 200
    python -m vitspec.tests.measure_tolerance --planted          # the planted bugs each tolerance must reject

For each stage it prints the largest normalized error |got - ref| / (eps * sqrt(K) * magnitude) seen (float32,
float64), or the largest ratio of the target's to the same-dtype baseline's (bfloat16, float16), and the median.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import numpy as np
from hypothesis import settings

from vitspec.tests import checks, tolerance

TESTS = {  # stage -> (module, differential test)
    "patch_embed": ("test_embed", "test_patch_embed_matches_reference"),
    "rotary_angles": ("test_rope", "test_rotary_angles_match_reference"),
    "rotary_cos_sin": ("test_rope", "test_rotary_cos_sin_matches_reference"),
    "apply_rotary": ("test_rope", "test_apply_rotary_matches_reference"),
    "attention": ("test_attention", "test_attention_matches_reference"),
    "attention_module": ("test_attention", "test_attention_module_matches_reference"),
    "rms_norm": ("test_block", "test_rms_norm_matches_reference"),
    "mlp": ("test_block", "test_mlp_matches_reference"),
    "vision_block": ("test_block", "test_vision_block_matches_reference"),
    "merger": ("test_merger", "test_merger_matches_reference"),
    "vision_tower": ("test_tower", "test_vision_tower_matches_reference"),
}


def recorder(records):
    """A stand-in for checks.assert_close that records instead of asserting."""

    def record(stage, got, ref, *, K, magnitude, dtype, baseline=None, **context):
        got, ref = checks.to_numpy(got), np.asarray(ref, dtype=np.float64)
        e = float(np.max(tolerance.normalized_error(got, ref, K, magnitude, dtype)))
        if dtype in tolerance.LOW_PRECISION:
            b = float(np.max(tolerance.normalized_error(baseline(), ref, K, magnitude, dtype)))
            records[stage].append((e, e / max(b, 1.0 / np.sqrt(K)), b))
        else:
            records[stage].append((e, e, None))

    return record


def planted_bugs():
    """(stage, name, target) triples: the reference with one small bug in one stage."""
    from vitspec.reference import TARGET as ref, attention, block, embed, rope
    from vitspec.tests.problems import planted_tower, tanh_gelu_merger

    def bf16(x):
        import torch

        return torch.as_tensor(np.asarray(x, dtype=np.float64)).to(torch.bfloat16).double().numpy()

    class Planted:
        name, dtype, device = "planted", "float32", "cpu"

        def __init__(self, **stages):
            self.__dict__.update(stages)

        def __getattr__(self, item):
            return getattr(ref, item)

    def cos_sin_bf16_freq(pos, head_dim, theta=10000.0):
        freqs = bf16(rope.inv_freq(head_dim, theta))
        half = np.concatenate([pos[:, :1] * freqs, pos[:, 1:] * freqs], axis=1)
        return np.cos(np.tile(half, 2)), np.sin(np.tile(half, 2))

    def silu_approx(x, params):
        p = {k: v for k, v in params.items()}
        gate = block.linear(x, p["gate_proj.weight"], p["gate_proj.bias"])
        up = block.linear(x, p["up_proj.weight"], p["up_proj.bias"])
        return block.linear(gate / (1 + np.exp(-1.702 * gate)) * up, p["down_proj.weight"], p["down_proj.bias"])

    return [
        (
            "patch_embed",
            "pixel_values rounded to bf16",
            Planted(patch_embed=lambda x, w: embed.patch_embed(bf16(x), w)),
        ),
        (
            "rotary_angles",
            "inv_freq rounded to bf16",
            Planted(
                rotary_angles=lambda pos, head_dim, theta=10000.0: (
                    np.concatenate([pos[:, :1], pos[:, 1:]], axis=1).repeat(head_dim // 4, axis=1)
                    * np.tile(bf16(rope.inv_freq(head_dim, theta)), 2)
                )
            ),
        ),
        ("rotary_cos_sin", "inv_freq rounded to bf16", Planted(rotary_cos_sin=cos_sin_bf16_freq)),
        (
            "attention",
            "scale rounded to bf16",
            Planted(
                attention=lambda q, k, v, cu: attention.attention(
                    q * bf16(1 / np.sqrt(q.shape[-1])) * np.sqrt(q.shape[-1]), k, v, cu
                )
            ),
        ),
        ("rms_norm", "eps 1e-5", Planted(rms_norm=lambda x, w, eps=1e-6: block.rms_norm(x, w, 1e-5))),
        ("mlp", "silu as x*sigmoid(1.702x)", Planted(mlp=silu_approx)),
        (
            "vision_block",
            "RMSNorm eps 1e-5",
            Planted(vision_block=lambda x, p, cu, rotary, h, eps=1e-6: block.vision_block(x, p, cu, rotary, h, 1e-5)),
        ),
        ("merger", "tanh GELU", Planted(merger=tanh_gelu_merger)),
        ("vision_tower", "tanh GELU in the merger", Planted(vision_tower=planted_tower("tanh_gelu"))),
        ("vision_tower", "RMSNorm eps 1e-5", Planted(vision_tower=planted_tower("rms_eps_1e-5"))),
    ]


def planted_low_precision(dtype: str):
    """(stage, name, target) triples in a low-precision dtype: the baseline with one precision bug."""
    import torch

    from vitspec.tests import baseline as B

    td = B.TORCH[dtype]

    class Planted:
        name, device = "planted", "cpu"

        def __init__(self, **stages):
            self.dtype = dtype
            self.__dict__.update(stages)

    def cos_sin_low(pos, head_dim, theta=10000.0):
        inv = (1.0 / theta ** (torch.arange(0, head_dim // 2, 2, dtype=torch.float32) / (head_dim // 2))).to(td)
        p = torch.as_tensor(np.asarray(pos)).to(td)
        half = torch.cat([p[:, :1] * inv, p[:, 1:] * inv], dim=1)
        return B.out(torch.cat([half, half], 1).cos()), B.out(torch.cat([half, half], 1).sin())

    def rms_low(x, w, eps=1e-6):
        x = B.cast(x, dtype)
        return B.out(x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * B.cast(w, dtype))

    def attention_low_softmax(q, k, v, cu):
        q, k, v = (B.cast(a, dtype) for a in (q, k, v))
        result = torch.zeros_like(q)
        for a, b in zip(cu[:-1], cu[1:]):
            qs, ks, vs = (t[a:b].transpose(0, 1) for t in (q, k, v))
            p = torch.softmax(qs @ ks.transpose(1, 2) / np.sqrt(q.shape[-1]), dim=-1)  # softmax in the dtype
            result[a:b] = (p @ vs).transpose(0, 1)
        return B.out(result)

    def rope_low(x, rotary):  # Planted declares no capabilities: rotary is (cos, sin)
        cos, sin = rotary
        x = B.cast(x, dtype)
        c, s = (B.cast(a, dtype)[:, None] for a in (cos, sin))
        h = x.shape[-1] // 2
        return B.out(x * c + torch.cat([-x[..., h:], x[..., :h]], -1) * s)

    return [
        ("rotary_cos_sin", f"inv_freq and positions in {dtype}", Planted(rotary_cos_sin=cos_sin_low)),
        ("rms_norm", f"RMSNorm statistics in {dtype}", Planted(rms_norm=rms_low)),
        ("attention", f"softmax in {dtype}", Planted(attention=attention_low_softmax)),
        ("apply_rotary", f"rotation in {dtype}", Planted(apply_rotary=rope_low)),
    ]


def run(target, stages, examples: int, records) -> None:
    import importlib

    settings.register_profile("measure", deadline=None, derandomize=False, database=None, max_examples=examples)
    settings.load_profile("measure")
    for stage in stages:
        module_name, test_name = TESTS[stage]
        module = importlib.import_module(f"tests.{module_name}")
        saved = module.assert_close
        module.assert_close = recorder(records)
        try:
            getattr(module, test_name)(stage=lambda name: getattr(target, name), target=target)
        finally:
            module.assert_close = saved


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vitspec.tests.measure_tolerance")
    p.add_argument("--target", default="vitspec.impl:TARGET")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--examples", type=int, default=200)
    p.add_argument("--stages", default=",".join(TESTS))
    p.add_argument("--planted", action="store_true", help="measure the planted bugs instead of the target")
    p.add_argument("--planted-low", metavar="DTYPE", help="measure the low-precision planted bugs in DTYPE")
    args = p.parse_args(argv)
    from vitspec.spec.protocol import configured_target

    if args.planted:
        for stage, name, target in planted_bugs():
            records = defaultdict(list)
            run(target, [stage], max(10, args.examples // 10), records)
            e = np.array([r[0] for r in records[stage]])
            print(
                f"{stage:16} planted {name:32} normalized error: min {e.min():.3g}  median {np.median(e):.3g}  "
                f"max {e.max():.3g}  (tolerance c = {tolerance.TABLE[stage].c})"
            )
        return 0
    if args.planted_low:
        for stage, name, target in planted_low_precision(args.planted_low):
            records = defaultdict(list)
            run(target, [stage], max(10, args.examples // 10), records)
            r = np.array([row[1] for row in records[stage]])
            print(
                f"{stage:16} planted {name:32} target / baseline: min {r.min():.3g}  median {np.median(r):.3g}  "
                f"max {r.max():.3g}  (factor {tolerance.TABLE[stage].factor})"
            )
        return 0
    target = configured_target(args.target, args.device, args.dtype)
    records = defaultdict(list)
    run(target, args.stages.split(","), args.examples, records)
    for stage, rows in records.items():
        e, ratio = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        base = [r[2] for r in rows if r[2] is not None]
        extra = f"  baseline max {max(base):.3g}" if base else ""
        what = "target / baseline" if base else "normalized"
        print(
            f"{stage:16} {checks.target_dtype(target):9} n={len(rows):4}  {what}: max {ratio.max():.3g} "
            f"median {np.median(ratio):.3g}{extra}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
