"""llama.cpp (llama-cpp-python 0.3.36, CPU): Qwen2.5-VL's vision encoder is not float32 even with an all-F32 mmproj.

Needs only the port:  pip install llama-cpp-python==0.3.36 gguf numpy   (a CPU build, with mtmd). Run:
    python llama_cpp_f16_im2col_tanh_gelu.py
It writes a tiny Qwen2.5-VL mmproj (projector qwen2.5vl_merger, seeded random weights, every tensor F32) and a
vocab-only text GGUF, encodes one random 84x56 image through mtmd (llama_cpp.mtmd_cpp), reads graph nodes with the
eval callback, and compares two stages with float64 NumPy. Set LLAMA_CPP_LOG=1 to see llama.cpp's log.

What llama.cpp does (the sources vendored by llama-cpp-python 0.3.36; ggml 0.25.3).
1. Patch embedding. tools/mtmd/models/qwen2vl.cpp (clip_graph_qwen2vl::build_inp_with_temporal_merge) runs the
   Conv3d as two ggml_conv_2d calls, one per temporal slice of the kernel (v.patch_embd.weight, .weight.1).
   ggml_conv_2d (ggml/src/ggml.c) is ggml_im2col + ggml_mul_mat, and in this release it asks ggml_im2col for F16
   unless the kernel is BF16: dst_type `a->type == GGML_TYPE_BF16 ? GGML_TYPE_F32 : GGML_TYPE_F16` (the 0.3.36
   libggml-base.so's ggml_conv_2d compares the kernel's type with 30, GGML_TYPE_BF16, and passes 1, GGML_TYPE_F16,
   otherwise). Earlier ggml_conv_2d passed a->type (an F32 im2col for an F32 kernel); deepseekocr.cpp below
   dates the F16 im2col to PR #23660. So with an F32 kernel and F32 pixels the IM2COL node is F16 and holds the
   pixels rounded to f16; the CPU mul_mat then converts the F32 kernel to the F16 operand's vec_dot type, so the
   weights are rounded to f16 too.
   tools/mtmd/models/deepseekocr.cpp in the same release already works around this with its own conv_2d_f32
   (PR #26727: "the F16 im2col it emits since #23660 degrades OCR"); qwen2vl.cpp does not.
2. Merger GELU. qwen2vl.cpp builds the merger MLP with build_ffn(..., FFN_GELU), i.e. ggml_gelu
   (tools/mtmd/clip.cpp, clip_graph::build_ffn). ggml_gelu is the tanh approximation, and on the CPU
   ggml/src/ggml-cpu/vec.h defines GGML_GELU_FP16, so ggml_vec_gelu_f32 rounds each input in (-10, 10) to f16 and
   reads ggml_table_gelu_f16 (filled by ggml_cpu_init with the tanh formula, rounded to f16): the output is
   f16(tanh_gelu(f16(x))). ggml_gelu_erf / FFN_GELU_ERF (exact erf, f32 on the CPU) exist in this release and
   other projectors use them (e.g. tools/mtmd/models/dotsocr.cpp: "nn.GELU() defaults to exact erf-based GELU").

What Qwen2.5-VL does (transformers, models/qwen2_5_vl/modeling_qwen2_5_vl.py): Qwen2_5_VisionPatchEmbed is one
Conv3d computed in the weights' dtype (float32 for a float32 checkpoint); Qwen2_5_VLPatchMerger's MLP is
Linear -> nn.GELU() -> Linear, and nn.GELU() is approximate='none', the exact erf GELU (Qwen2-VL's merger too).

Measured with this script (0.3.36, x86-64 CPU, seed 0): the patch embedding matches the float64 convolution of
f16-rounded pixels and weights to 2.7e-7 and differs from the float64 convolution of the f32 values by 7.4e-4 (output
magnitude 2.5); the merger GELU's output matches the f16-table tanh GELU to 2.4e-7 (one f16 step of a value below
2^-11) and differs from the erf GELU by 1.9e-3 (inputs in [-4.4, 5.7]; the tanh approximation alone is 4.7e-4 on
them, the rest is the f16 table). On the whole tower (random weights, against a float64 implementation of HF's vision
tower) the two give max abs 9.7e-4 at output magnitude 0.47, 288 x a float32 tolerance (the patch embedding alone
1.6e-4, the tanh GELU alone 4.3e-4); 7.6e-4 at far positions; 7.2e-4 at values ~2.8 on a 2-image batch.

Suggested fix: build the qwen2vl / qwen2.5vl merger with FFN_GELU_ERF (ggml_gelu_erf); and give an F32 kernel an
F32 im2col, either in ggml_conv_2d (F16 only for an F16 kernel, as PR #23660's description says) or in
qwen2vl.cpp as deepseekocr.cpp's conv_2d_f32 does, so that an F32 mmproj computes the patch embedding in F32.

Exit status 1 while either deviation is present, 0 once both are gone (2 if the merger GELU node is not found).
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import tempfile
from pathlib import Path

import gguf
import llama_cpp
import llama_cpp.mtmd_cpp as mtmd
import numpy as np

D, HEADS, FF, DEPTH, OUT, PATCH = 32, 2, 48, 2, 24, 14  # hidden, heads, MLP width, blocks, projection, patch
IMAGE_H, IMAGE_W = 56, 84  # multiples of 28: 4 x 6 patches, 2 x 3 merged tokens
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)

rng = np.random.default_rng(0)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def mmproj_tensors() -> dict[str, np.ndarray]:
    """The tensors llama.cpp's qwen2.5vl_merger loader reads, named as convert_hf_to_gguf.py writes them; all F32."""
    k = 1 / math.sqrt(2 * 3 * PATCH * PATCH)
    t = {
        "v.patch_embd.weight": randn(D, 3, PATCH, PATCH, scale=k),
        "v.patch_embd.weight.1": randn(D, 3, PATCH, PATCH, scale=k),
    }
    for i in range(DEPTH):
        b = f"v.blk.{i}."
        t[b + "ln1.weight"] = 1 + randn(D, scale=0.1)
        t[b + "ln2.weight"] = 1 + randn(D, scale=0.1)
        for name, (n_out, n_in) in {
            "attn_q": (D, D), "attn_k": (D, D), "attn_v": (D, D), "attn_out": (D, D),
            "ffn_gate": (FF, D), "ffn_up": (FF, D), "ffn_down": (D, FF),
        }.items():  # fmt: skip
            t[b + name + ".weight"] = randn(n_out, n_in, scale=1 / math.sqrt(n_in))
            t[b + name + ".bias"] = randn(n_out, scale=0.1)
    t["v.post_ln.weight"] = 1 + randn(D, scale=0.1)  # merger.ln_q
    t["mm.0.weight"], t["mm.0.bias"] = randn(4 * D, 4 * D, scale=1.5 / math.sqrt(4 * D)), randn(4 * D, scale=0.1)
    t["mm.2.weight"], t["mm.2.bias"] = randn(OUT, 4 * D, scale=1 / math.sqrt(4 * D)), randn(OUT, scale=0.1)
    return t


def write_mmproj(path: str, tensors: dict[str, np.ndarray]) -> None:
    w = gguf.GGUFWriter(path, "clip")
    w.add_type(gguf.GGUFType.MMPROJ)
    w.add_file_type(0)  # ALL_F32
    w.add_clip_projector_type("qwen2.5vl_merger")
    w.add_clip_has_vision_encoder(True)
    w.add_vision_use_silu(True)  # the blocks' MLP (SiLU); the merger's activation is not configurable
    w.add_vision_projection_dim(OUT)
    w.add_vision_image_size(560)
    w.add_vision_patch_size(PATCH)
    w.add_vision_embedding_length(D)
    w.add_vision_feed_forward_length(FF)
    w.add_vision_block_count(DEPTH)
    w.add_vision_head_count(HEADS)
    w.add_vision_image_mean(list(MEAN))
    w.add_vision_image_std(list(STD))
    w.add_vision_n_wa_pattern(2)  # block 1 full attention, block 0 windowed (fullatt_block_indexes [1])
    w.add_vision_attention_layernorm_eps(1e-6)
    for name, array in tensors.items():
        w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_vocab(path: str) -> None:
    """A weightless qwen2vl text GGUF: mtmd needs a vocabulary for <|vision_start|> / <|vision_end|> and a text
    n_embd equal to the projection's. Byte-level BPE needs its 256 byte tokens (GPT-2's byte-to-unicode map)."""
    direct = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    tokens = [chr(b) if b in direct else chr(next(extra)) for b in range(256)] + ["ĠĠ"]
    specials = ["<|endoftext|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
    w = gguf.GGUFWriter(path, "qwen2vl")
    w.add_context_length(4096)
    w.add_embedding_length(OUT)
    w.add_block_count(1)
    w.add_feed_forward_length(4 * OUT)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_dimension_sections([1, 1, 1, 0])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens + specials)
    w.add_token_types([gguf.TokenType.NORMAL] * len(tokens) + [gguf.TokenType.CONTROL] * len(specials))
    w.add_token_merges(["Ġ Ġ"])
    w.add_bos_token_id(len(tokens))
    w.add_eos_token_id(len(tokens))
    w.add_add_bos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


class Tensor(ctypes.Structure):
    """The leading fields of struct ggml_tensor (ggml/include/ggml.h of the vendored llama.cpp)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
    ]


ggml = ctypes.CDLL(str(min((Path(llama_cpp.__file__).parent / "lib").glob("*ggml-base.*"))))  # .so / .dylib / .dll
for fn, args, res in [
    ("ggml_op_desc", [ctypes.c_void_p], ctypes.c_char_p),  # the op's name, or the unary op's (GELU, GELU_ERF)
    ("ggml_get_name", [ctypes.c_void_p], ctypes.c_char_p),
    ("ggml_type_name", [ctypes.c_int], ctypes.c_char_p),
    ("ggml_nbytes", [ctypes.c_void_p], ctypes.c_size_t),
    ("ggml_backend_tensor_get", [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t], None),
]:
    getattr(ggml, fn).argtypes, getattr(ggml, fn).restype = args, res
NUMPY_TYPES = {"f32": np.float32, "f16": np.float16}
KEEP = {"IM2COL", "MUL_MAT", "ADD", "GELU", "GELU_ERF"}


def node(ptr) -> dict:
    """A graph tensor's op, name, type and sources; its data (NumPy, axes reversed from ggml's ne) where it is kept."""
    t = ctypes.cast(ptr, ctypes.POINTER(Tensor)).contents
    rec = {
        "op": ggml.ggml_op_desc(ptr).decode(),
        "name": ggml.ggml_get_name(ptr).decode(),
        "type": ggml.ggml_type_name(t.type).decode(),
        "src": [view_base(p) if p else None for p in t.src[:2]],  # a reshape's source: the tensor it views
    }
    if rec["type"] in NUMPY_TYPES:
        raw = np.empty(ggml.ggml_nbytes(ptr), np.uint8)
        ggml.ggml_backend_tensor_get(ptr, raw.ctypes.data, 0, raw.nbytes)
        rec["data"] = raw.view(NUMPY_TYPES[rec["type"]]).reshape(list(t.ne)[::-1]).astype(np.float64)
    return rec


def view_base(ptr):
    """The tensor a view (ggml_reshape_2d of the im2col) looks into; the pointer itself if it is no view. Read while
    the graph exists (in the eval callback): the pointers dangle after mtmd_free."""
    t = ctypes.cast(ptr, ctypes.POINTER(Tensor)).contents
    return t.view_src or ptr


def encode() -> list[dict]:
    """Encode one image; returns the kept graph nodes in the order they ran (with the inputs of each IM2COL)."""
    tmp = tempfile.mkdtemp(prefix="llama-cpp-repro-")
    mmproj, vocab = os.path.join(tmp, "mmproj.gguf"), os.path.join(tmp, "vocab.gguf")
    write_mmproj(mmproj, TENSORS)
    write_vocab(vocab)
    llama_cpp.llama_backend_init()
    quiet = llama_cpp.llama_log_callback(lambda level, text, user: None)
    if not os.environ.get("LLAMA_CPP_LOG"):
        llama_cpp.llama_log_set(quiet, None)
        mtmd.mtmd_log_set(quiet, None)
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    text_model = llama_cpp.llama_model_load_from_file(vocab.encode(), params)

    nodes, errors = [], []

    def on_node(ptr, ask, _user):
        if ask:
            return True  # every node is computed on its own and shown here, before its buffer can be reused
        try:
            if ggml.ggml_op_desc(ptr).decode() in KEEP:
                rec = node(ptr)
                if rec["op"] == "IM2COL":
                    rec["kernel"], rec["input"] = node(rec["src"][0]), node(rec["src"][1])
                nodes.append(rec | {"ptr": ptr})
        except Exception as e:  # noqa: BLE001 - an exception cannot cross the C callback
            errors.append(repr(e))
        return True

    callback = llama_cpp.ggml_backend_sched_eval_callback(on_node)
    cp = mtmd.mtmd_context_params_default()
    cp.use_gpu, cp.n_threads, cp.warmup, cp.print_timings = False, 2, False, False
    cp.image_min_tokens, cp.image_max_tokens = 1, 4096
    cp.cb_eval, cp.cb_eval_user_data = callback, None
    ctx = mtmd.mtmd_init_from_file(mmproj.encode(), text_model, cp)
    if not ctx:
        sys.exit("mtmd_init_from_file failed (LLAMA_CPP_LOG=1 shows why)")
    image = rng.integers(0, 256, IMAGE_H * IMAGE_W * 3, dtype=np.uint8)
    bitmap = mtmd.mtmd_bitmap_init(IMAGE_W, IMAGE_H, (ctypes.c_ubyte * image.size).from_buffer(image))
    chunks = mtmd.mtmd_input_chunks_init()
    marker = mtmd.mtmd_default_marker()
    text = mtmd.mtmd_input_text(marker, len(marker), False, True)
    if mtmd.mtmd_tokenize(ctx, chunks, ctypes.byref(text), (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap), 1) != 0:
        sys.exit("mtmd_tokenize failed")
    for i in range(mtmd.mtmd_input_chunks_size(chunks)):
        chunk = mtmd.mtmd_input_chunks_get(chunks, i)
        if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
            if mtmd.mtmd_encode_chunk(ctx, chunk) != 0:
                sys.exit("mtmd_encode_chunk failed")
    mtmd.mtmd_input_chunks_free(chunks)
    mtmd.mtmd_bitmap_free(bitmap)
    mtmd.mtmd_free(ctx)
    if errors:
        sys.exit(f"eval callback: {errors[0]}")
    return nodes


def gelu_erf(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def gelu_f16_table(x):
    """ggml-cpu's ggml_vec_gelu_f32 under GGML_GELU_FP16: 0 below -10, x above 10, else the table entry at f16(x)
    (the table holds f16(tanh GELU) computed in f32)."""
    x16 = x.astype(np.float16).astype(np.float32)
    table = gelu_tanh(x16).astype(np.float32).astype(np.float16).astype(np.float64)
    return np.where(x <= -10, 0.0, np.where(x >= 10, x, table))


def f16(a):
    return np.asarray(a).astype(np.float16).astype(np.float64)


TENSORS = mmproj_tensors()


def main() -> int:
    print(f"llama-cpp-python {llama_cpp.__version__}; mmproj: every tensor F32; image {IMAGE_W}x{IMAGE_H}")
    nodes = encode()
    by_ptr = {n["ptr"]: n for n in nodes}

    # (a) the patch embedding: IM2COL -> MUL_MAT, once per temporal slice of the Conv3d kernel
    print("\n(a) patch embedding (ggml_conv_2d = ggml_im2col + ggml_mul_mat)")
    im2col_f16, d32, dpx, d16, mag = False, 0.0, 0.0, 0.0, 0.0
    if not any(n["op"] == "IM2COL" for n in nodes):
        print("  no IM2COL node: the patch embedding no longer goes through ggml_im2col")
    for im in (n for n in nodes if n["op"] == "IM2COL"):
        kname, ktype, itype = im["kernel"]["name"], im["kernel"]["type"], im["input"]["type"]
        print(f"  IM2COL node: type {im['type']}; kernel {kname} {ktype}, input {im['input']['name']} {itype}")
        im2col_f16 |= im["type"] == "f16" and ktype == "f32" and itype == "f32"
        x = im["input"]["data"][0]  # (C, H, W): llama.cpp's normalized pixels
        C, H, W = x.shape
        patches = x.reshape(C, H // PATCH, PATCH, W // PATCH, PATCH).transpose(1, 3, 0, 2, 4).reshape(-1, C * PATCH**2)
        cols = im["data"].reshape(patches.shape)
        print(f"    IM2COL holds the pixels rounded to f16: {np.array_equal(cols, f16(patches))}")
        kernel = TENSORS[kname].reshape(D, -1).astype(np.float64)
        mm = next(n for n in nodes if n["op"] == "MUL_MAT" and by_ptr.get(n["src"][0]) is im)
        got = mm["data"].reshape(D, -1).T  # (patches, D)
        d32 = max(d32, np.abs(got - patches @ kernel.T).max())
        dpx = max(dpx, np.abs(got - f16(patches) @ kernel.T).max())
        d16 = max(d16, np.abs(got - f16(patches) @ f16(kernel).T).max())
        mag = max(mag, np.abs(got).max())
    print(f"  max |llama.cpp - float64 conv, f32 pixels and f32 weights|   = {d32:.3e}")
    print(f"  max |llama.cpp - float64 conv, f16 pixels and f32 weights|   = {dpx:.3e}")
    print(f"  max |llama.cpp - float64 conv, f16 pixels and f16 weights|   = {d16:.3e}")
    print(f"  (output magnitude {mag:.3f})")

    # (b) the merger's GELU (between mm.0 and mm.2)
    print("\n(b) merger GELU (Qwen2.5-VL: nn.GELU(), exact erf)")
    tanh_table = False
    if not any(n["op"] in ("GELU", "GELU_ERF") for n in nodes):
        print("  no GELU / GELU_ERF node found: the graph changed, this script needs updating")
        return 2
    for g in (n for n in nodes if n["op"] in ("GELU", "GELU_ERF")):
        x, y = by_ptr[g["src"][0]]["data"], g["data"]
        e_erf, e_tanh, e_table = (np.abs(y - f(x)).max() for f in (gelu_erf, gelu_tanh, gelu_f16_table))
        print(f"  node {g['name']!r}: op {g['op']}, {x.size} values, input range [{x.min():.2f}, {x.max():.2f}]")
        print(f"  max |llama.cpp - erf GELU (float64)|                  = {e_erf:.3e}")
        print(f"  max |llama.cpp - tanh GELU (float64)|                 = {e_tanh:.3e}")
        print(f"  max |llama.cpp - tanh GELU through the f16 table|     = {e_table:.3e}")
        print(
            f"  (tanh GELU - erf GELU alone, float64, same inputs:      {np.abs(gelu_tanh(x) - gelu_erf(x)).max():.3e})"
        )
        tanh_table |= g["op"] == "GELU" and e_table < 0.1 * e_erf

    print()
    if im2col_f16:
        print("DEVIATION (a): ggml_conv_2d makes an F16 im2col for an F32 kernel and F32 input: the patch embedding")
        print("  is the convolution of f16-rounded pixels and weights, not the float32 Conv3d of Qwen2.5-VL")
    if tanh_table:
        print("DEVIATION (b): the merger's GELU is the tanh approximation read from an f16 table, not nn.GELU()'s erf")
    if im2col_f16 or tanh_table:
        return 1
    print("fixed: F32 im2col for an F32 kernel, and no f16-table tanh GELU in the merger")
    return 0


if __name__ == "__main__":
    sys.exit(main())
