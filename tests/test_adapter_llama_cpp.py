"""The llama.cpp adapter as far as it goes without llama.cpp: the mmproj GGUF it writes has the tensor names, types and
clip.* metadata llama.cpp's converter writes for Qwen2.5-VL (needs only the pure-Python ``gguf`` package), the pixel
layout it hands to llama.cpp's graph is the inverse of patchify, and configs llama.cpp cannot represent are refused.
With llama-cpp-python installed, the whole encoder runs once against the reference; without it that test is skipped
as an UPSTREAM ORACLE MISSING."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from vitspec.adapters import llama_cpp as L
from vitspec.reference.patchify import patchify
from vitspec.reference.tower import vision_tower as reference_tower
from vitspec.reference.weights import random_weights
from vitspec.spec.configs import small_config
from vitspec.tests.upstream import MISSING

gguf = pytest.importorskip("gguf", reason=f"{MISSING} gguf not installed (pip install 'vitspec[gguf]')")


def expected_names(depth: int) -> set[str]:
    names = {
        "v.patch_embd.weight",
        "v.patch_embd.weight.1",
        "v.post_ln.weight",
        "mm.0.weight",
        "mm.0.bias",
        "mm.2.weight",
        "mm.2.bias",
    }
    for i in range(depth):
        for t in ("ln1", "ln2"):
            names.add(f"v.blk.{i}.{t}.weight")
        for t in ("attn_q", "attn_k", "attn_v", "attn_out", "ffn_gate", "ffn_up", "ffn_down"):
            names |= {f"v.blk.{i}.{t}.weight", f"v.blk.{i}.{t}.bias"}
    return names


def test_mmproj_tensor_names_and_layout():
    cfg = small_config()
    w = random_weights(cfg, seed=1)
    t = L.mmproj_tensors(w, cfg)
    assert set(t) == expected_names(cfg["depth"])
    D = cfg["hidden_size"]
    for i, name in enumerate(("attn_q", "attn_k", "attn_v")):  # qkv split in its [q | k | v] order
        np.testing.assert_array_equal(
            t[f"v.blk.2.{name}.weight"], w["blocks.2.attn.qkv.weight"][i * D : (i + 1) * D].astype(np.float32)
        )
        np.testing.assert_array_equal(
            t[f"v.blk.2.{name}.bias"], w["blocks.2.attn.qkv.bias"][i * D : (i + 1) * D].astype(np.float32)
        )
    kernel = w["patch_embed.proj.weight"]
    np.testing.assert_array_equal(t["v.patch_embd.weight"], kernel[:, :, 0].astype(np.float32))
    np.testing.assert_array_equal(t["v.patch_embd.weight.1"], kernel[:, :, 1].astype(np.float32))
    np.testing.assert_array_equal(t["v.post_ln.weight"], w["merger.ln_q.weight"].astype(np.float32))
    np.testing.assert_array_equal(t["mm.2.weight"], w["merger.mlp.2.weight"].astype(np.float32))
    np.testing.assert_array_equal(t["v.blk.0.ffn_gate.weight"], w["blocks.0.mlp.gate_proj.weight"].astype(np.float32))
    assert all(a.dtype == np.float32 for a in t.values())


def test_mmproj_f16_types_follow_the_converter():
    """--outtype f16: 2-D and conv weights f16, norms and biases f32."""
    cfg = small_config(depth=2, fullatt_block_indexes=(1,))
    t = L.mmproj_tensors(random_weights(cfg), cfg, "float16")
    for name, a in t.items():
        assert a.dtype == (np.float16 if a.ndim >= 2 else np.float32), name


def test_mmproj_metadata():
    cfg = small_config()  # fullatt (1, 3): llama.cpp's period 2
    meta = L.mmproj_metadata(cfg)
    assert meta["general.architecture"] == "clip" and meta["clip.projector_type"] == "qwen2.5vl_merger"
    assert meta["clip.has_vision_encoder"] is True and meta["clip.use_silu"] is True
    assert meta["clip.vision.n_wa_pattern"] == 2
    assert meta["clip.vision.projection_dim"] == cfg["out_hidden_size"]
    assert meta["clip.vision.embedding_length"] == cfg["hidden_size"]
    assert meta["clip.vision.feed_forward_length"] == cfg["intermediate_size"]
    assert meta["clip.vision.block_count"] == cfg["depth"]
    assert meta["clip.vision.attention.head_count"] == cfg["num_heads"]
    assert meta["clip.vision.patch_size"] == 14
    assert meta["clip.vision.attention.layer_norm_epsilon"] == 1e-6
    released = {"depth": 32, "fullatt_block_indexes": [7, 15, 23, 31]}
    assert L.mmproj_metadata({**cfg, **released})["clip.vision.n_wa_pattern"] == 8


@pytest.mark.parametrize(
    "change",
    [
        {"fullatt_block_indexes": [0, 3]},
        {"fullatt_block_indexes": []},
        {"window_size": 224},
        {"temporal_patch_size": 1},
        {"spatial_merge_size": 1},
    ],
)
def test_configs_llama_cpp_cannot_represent_are_refused(change):
    with pytest.raises(ValueError):
        L.check_config({**small_config(), **change})


def test_written_gguf_reads_back(tmp_path):
    cfg = small_config(depth=2, fullatt_block_indexes=(1,))
    w = random_weights(cfg, seed=3)
    path = L.write_mmproj(tmp_path / "mmproj.gguf", w, cfg)
    reader = gguf.GGUFReader(str(path))
    fields = {f.name: f.contents() for f in reader.fields.values()}
    for key, value in L.mmproj_metadata(cfg).items():
        got = fields[key]
        if isinstance(value, (float, list)):
            np.testing.assert_allclose(got, value, rtol=1e-6)
        else:
            assert got == value, key
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == expected_names(2)
    # llama.cpp's axis order is NumPy's reversed: the conv slice is ne [P, P, C, D]
    assert list(tensors["v.patch_embd.weight"].shape) == [14, 14, 3, cfg["hidden_size"]]
    np.testing.assert_array_equal(
        np.asarray(tensors["v.blk.1.attn_k.bias"].data),
        w["blocks.1.attn.qkv.bias"][cfg["hidden_size"] : 2 * cfg["hidden_size"]].astype(np.float32),
    )
    vocab = gguf.GGUFReader(str(L.write_vocab(tmp_path / "vocab.gguf", 48)))
    vfields = {f.name: f.contents() for f in vocab.fields.values()}
    assert vfields["general.architecture"] == "qwen2vl" and vfields["qwen2vl.embedding_length"] == 48
    assert {"<|vision_start|>", "<|vision_end|>"} <= set(vfields["tokenizer.ggml.tokens"])
    assert len(vfields["tokenizer.ggml.tokens"]) >= 256  # every byte has a token


def test_frames_invert_patchify():
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((2, 3, 4 * 14, 6 * 14))
    pixel_values, grid = patchify(frames, 14, 2, 2)
    assert list(np.asarray(grid).ravel()) == [1, 4, 6]
    np.testing.assert_array_equal(L.frames_from_pixel_values(pixel_values, 4, 6), frames)


def test_vision_tower_runs_llama_cpp():
    """The whole encoder through mtmd against the reference: it runs, and differs by llama.cpp's measured amount
    (f16 im2col in the patch embedding, f16-table tanh GELU in the merger), not more."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(f"{MISSING} llama.cpp not installed (llama-cpp-python; ports/llama_cpp.sh)")
    cfg = small_config()
    w = random_weights(cfg, seed=0)
    rng = np.random.default_rng(0)
    grid = np.array([[1, 4, 6], [2, 2, 4]])
    n = int(np.sum(np.prod(grid, axis=1)))
    px = rng.standard_normal((n, 3 * 2 * 14 * 14))
    got = L.LlamaCppTarget("float32").vision_tower(px, grid, w, cfg)
    ref = reference_tower(px, grid, w, cfg)
    assert got.shape == ref.shape
    err = float(np.max(np.abs(got - ref)))
    assert err < 2e-2 * float(np.max(np.abs(ref))), err


@pytest.mark.parametrize("bad", ["missing", "shape"])
def test_weights_that_would_abort_llama_cpp_are_refused(bad):
    """llama.cpp aborts the process on an mmproj whose tensors disagree with its metadata: refused before writing."""
    cfg = small_config(depth=2, fullatt_block_indexes=(1,))
    w = random_weights(cfg)
    key = "blocks.1.mlp.up_proj.weight"
    if bad == "missing":
        del w[key]
    else:
        w[key] = w[key][:, :-1]
    with pytest.raises(ValueError, match="up_proj"):
        L.check_weights(w, cfg)
    L.check_weights(random_weights(cfg), cfg)


def test_n_wa_pattern_follows_the_converter():
    """The converter's rule, and the blocks llama.cpp will run full must be the config's: [0] at depth 2 would run
    both blocks full (llama.cpp aborts on it), so it is refused."""
    with pytest.raises(ValueError, match="would run as"):
        L.n_wa_pattern([0], 2)
    assert L.n_wa_pattern([1, 3], 4) == 2
    assert L.n_wa_pattern([7, 15, 23, 31], 32) == 8
