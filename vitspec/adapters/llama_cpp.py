"""llama.cpp's Qwen2.5-VL vision encoder as a target, through llama-cpp-python's mtmd bindings (``llama_cpp.mtmd_cpp``).

llama.cpp has no Python-callable stage functions: its whole encoder is one ggml graph (tools/mtmd/models/qwen2vl.cpp)
run by ``mtmd_encode_chunk`` on an image chunk. So the target has one stage, ``vision_tower``; every other stage is
inline in that graph and is reported as such (``capabilities["inline"]``).

How a call runs:
1. The weights (HF names) are written as an mmproj GGUF with the ``gguf`` package, with the tensor names and metadata
   of llama.cpp's converter (``convert_hf_to_gguf.py``, class ``Qwen2VLVisionModel``): qkv split into q, k, v; the
   Conv3d kernel split into its two temporal slices ``v.patch_embd.weight`` and ``v.patch_embd.weight.1``; merger.ln_q
   as ``v.post_ln.weight``; merger.mlp.0 / .2 as ``mm.0`` / ``mm.2``. float32 writes every tensor F32 (the converter's
   ``--outtype f32``); float16 writes 2-D weights F16 and the rest F32 (``--outtype f16``), llama.cpp's native dtype.
2. A vocab-only qwen2vl text GGUF (a byte-level BPE vocabulary, no weights) is written too: ``mtmd_tokenize`` needs a
   vocabulary for the vision start / end tokens, and mtmd checks that the text model's n_embd equals the
   projection's.
3. Each image (and each temporal group of a video: llama.cpp encodes one group of two frames at a time) is handed
   to mtmd as a zero uint8 bitmap of the grid's size (a multiple of 28, inside the pixel limits, so llama.cpp's own
   resize keeps its size). The eval callback then writes the protocol's pixel values into the graph's ``inp_raw``
   input just before each of the two patch-embedding im2col nodes runs (frame 0 before the
   ``v.patch_embd.weight`` convolution, frame 1 before ``v.patch_embd.weight.1``), so llama.cpp's own graph computes
   everything from the pixel values on. The rearrangement of pixel_values rows (merge-block order, columns
   (C, T, P, P)) into the two (C, H, W) frames is data layout only.
4. The output of ``mtmd_get_output_embd`` (raster order, llama.cpp restores it with its own window index) is returned.
   Images and temporal groups are encoded one at a time and concatenated, which is how llama.cpp serves them; the
   checks that images do not see each other therefore say nothing about llama.cpp's batching (it has none).

Limits (ValueError, from what llama.cpp can represent): temporal_patch_size 2, spatial_merge_size 2, 3 channels,
window_size 112 (llama.cpp's Qwen2.5-VL path does not read a window size), fullatt_block_indexes evenly spaced
(the converter's rule; ``n_wa_pattern`` = first full block + 1, and llama.cpp makes block i full when
(i + 1) % n_wa_pattern == 0, whether or not the config lists it).

Flash attention is on, as llama.cpp's default (auto) resolves it on the CPU (K, V and the window mask in F16).
Measured on the CPU (SPEC-NOTES): ggml_conv_2d's im2col is F16 whatever the kernel's type, so the patch embedding sees
f16-rounded pixels and weights; the merger's GELU is the tanh approximation from an f16 table. The whole tower
differs from the float64 spec by ~1e-3 at values ~1.6: the float32 tower checks fail on that, by design of the
port, and the failure message carries the size.

    vitspec verify --target vitspec.adapters.llama_cpp:TARGET            # float32
    vitspec verify --target vitspec.adapters.llama_cpp:TARGET --dtype float16

The GGUF writers need only ``gguf`` (pure Python); the target needs ``llama-cpp-python`` (ports/llama_cpp.sh).
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from pathlib import Path

import numpy as np

ARCH_CLIP = "clip"
PROJECTOR_TYPE = "qwen2.5vl_merger"
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)  # released preprocessor_config.json (llama.cpp's own preprocessing
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)  # uses them; the pixel values are injected after it)
GGML_WINDOW_SIZE = 112  # llama.cpp's Qwen2.5-VL window size (hparams.attn_window_size unset -> 112)
FTYPES = {"float32": 0, "float16": 1}  # general.file_type: LlamaFileType.ALL_F32, MOSTLY_F16

# HF block sub-names -> llama.cpp's (v.blk.N.<name>); attn.qkv is split into attn_q, attn_k, attn_v.
BLOCK_NAMES = {
    "norm1": "ln1",
    "norm2": "ln2",
    "attn.proj": "attn_out",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
MERGER_NAMES = {"ln_q": "v.post_ln", "mlp.0": "mm.0", "mlp.2": "mm.2"}


def n_wa_pattern(fullatt_block_indexes, depth: int) -> int:
    """llama.cpp's window-attention period: first full block + 1, the full blocks one period apart (its converter's
    rule and ValueError), and exactly the blocks llama.cpp will run full.

    llama.cpp makes block i full when (i + 1) % n_wa_pattern == 0 for every i < depth; its converter does not compare
    that with the config (fullatt_block_indexes [0] at depth 2 is written as n_wa_pattern 1, on which llama.cpp
    0.3.36 aborts the process in the encode, measured). Such configs are refused here with ValueError.
    """
    full = [int(i) for i in fullatt_block_indexes]
    if not full:
        raise ValueError("llama.cpp's converter needs fullatt_block_indexes for Qwen2.5-VL (n_wa_pattern > 0)")
    period = full[0] + 1
    for a, b in zip(full, full[1:]):
        if b - a != period:
            raise ValueError(
                f"Invalid fullatt_block_indexes: {full} (llama.cpp's converter needs the full blocks "
                f"n_wa_pattern = {period} apart)"
            )
    implied = [i for i in range(depth) if (i + 1) % period == 0]
    if implied != full:
        raise ValueError(
            f"llama.cpp can represent only fullatt_block_indexes of the form (i + 1) % n_wa_pattern == 0; "
            f"{full} with depth {depth} would run as {implied}"
        )
    return period


def check_config(config: dict) -> None:
    """ValueError for the configs llama.cpp's Qwen2.5-VL graph cannot represent."""
    fixed = {"temporal_patch_size": 2, "spatial_merge_size": 2, "in_channels": 3, "window_size": GGML_WINDOW_SIZE}
    for key, value in fixed.items():
        if int(config[key]) != value:
            raise ValueError(f"llama.cpp's Qwen2.5-VL graph supports {key}={value} only, got {config[key]}")
    if config["window_size"] % (config["patch_size"] * config["spatial_merge_size"]):
        raise ValueError("window_size must be a multiple of patch_size * spatial_merge_size")
    n_wa_pattern(config["fullatt_block_indexes"], int(config["depth"]))


def hf_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """The HF-named weights an mmproj is written from, with the shapes its clip.* metadata implies (the spec's
    weight layout, vitspec.spec.validate.expected_shapes, with the config's values as ints)."""
    from vitspec.spec.validate import expected_shapes

    keys = (
        "hidden_size",
        "intermediate_size",
        "out_hidden_size",
        "in_channels",
        "temporal_patch_size",
        "patch_size",
        "spatial_merge_size",
        "depth",
    )
    return expected_shapes({**config, **{k: int(config[k]) for k in keys}})


def check_weights(weights: dict, config: dict) -> None:
    """ValueError for weights that would make a GGUF whose tensors disagree with its metadata.

    llama.cpp does not reject such a file: a missing or mis-shaped tensor ends in a GGML_ASSERT that aborts the whole
    process (measured: a missing blocks.N.mlp.up_proj.weight). llama.cpp's converter has no such check either (it
    writes what the checkpoint holds), so this is the adapter keeping the process alive, not llama.cpp validating."""
    names = {k.removeprefix("visual.") for k in weights}
    for key, shape in hf_shapes(config).items():
        if key not in names:
            raise ValueError(f"weights is missing {key!r} (llama.cpp would abort on the mmproj written without it)")
        got = tuple(np.shape(weights[key] if key in weights else weights["visual." + key]))
        if got != shape:
            raise ValueError(
                f"weights[{key!r}] has shape {got}, the config implies {shape} (llama.cpp would abort on the mmproj)"
            )


def mmproj_tensors(weights: dict, config: dict, dtype: str = "float32") -> dict[str, np.ndarray]:
    """The mmproj tensors as llama.cpp's converter names and types them, from weights with HF names.

    Arrays are in gguf-py's (NumPy) axis order; llama.cpp reads them with the axes reversed.
    """
    if dtype not in FTYPES:
        raise ValueError(f"dtype must be one of {list(FTYPES)} for an mmproj GGUF, got {dtype!r}")
    w = {k.removeprefix("visual."): np.asarray(v, dtype=np.float64) for k, v in weights.items()}

    def typed(name: str, a: np.ndarray) -> np.ndarray:
        # --outtype f16: 2-D (and conv) weights f16, 1-D tensors (norms, biases) f32; --outtype f32: all f32
        if dtype == "float16" and a.ndim >= 2:
            return np.ascontiguousarray(a, dtype=np.float16)
        return np.ascontiguousarray(a, dtype=np.float32)

    out: dict[str, np.ndarray] = {}
    kernel = w["patch_embed.proj.weight"]  # (D, C, T, P, P)
    if kernel.shape[2] != 2:
        raise ValueError(f"llama.cpp splits the Conv3d kernel into 2 temporal slices; got T={kernel.shape[2]}")
    out["v.patch_embd.weight"] = typed("v.patch_embd.weight", kernel[:, :, 0])
    out["v.patch_embd.weight.1"] = typed("v.patch_embd.weight.1", kernel[:, :, 1])
    D = kernel.shape[0]
    for i in range(int(config["depth"])):
        hf, gg = f"blocks.{i}.", f"v.blk.{i}."
        for part in ("weight", "bias"):
            qkv = w[f"{hf}attn.qkv.{part}"]
            for j, name in enumerate(("attn_q", "attn_k", "attn_v")):
                out[f"{gg}{name}.{part}"] = typed(name, qkv[j * D : (j + 1) * D])
        for hf_name, gg_name in BLOCK_NAMES.items():
            for part in ("weight", "bias"):
                key = f"{hf}{hf_name}.{part}"
                if key in w:
                    out[f"{gg}{gg_name}.{part}"] = typed(gg_name, w[key])
    for hf_name, gg_name in MERGER_NAMES.items():
        for part in ("weight", "bias"):
            key = f"merger.{hf_name}.{part}"
            if key in w:
                out[f"{gg_name}.{part}"] = typed(gg_name, w[key])
    return out


def mmproj_metadata(config: dict, dtype: str = "float32") -> dict:
    """The clip.* metadata of llama.cpp's converter for a Qwen2.5-VL mmproj (key -> value)."""
    check_config(config)
    return {
        "general.architecture": ARCH_CLIP,
        "general.type": "mmproj",
        "general.file_type": FTYPES[dtype],
        "clip.projector_type": PROJECTOR_TYPE,
        "clip.has_vision_encoder": True,
        "clip.use_silu": True,
        "clip.vision.projection_dim": int(config["out_hidden_size"]),
        "clip.vision.image_size": 560,  # the converter's default; llama.cpp's Qwen path sizes images itself
        "clip.vision.patch_size": int(config["patch_size"]),
        "clip.vision.embedding_length": int(config["hidden_size"]),
        "clip.vision.feed_forward_length": int(config["intermediate_size"]),
        "clip.vision.block_count": int(config["depth"]),
        "clip.vision.attention.head_count": int(config["num_heads"]),
        "clip.vision.image_mean": list(IMAGE_MEAN),
        "clip.vision.image_std": list(IMAGE_STD),
        "clip.vision.n_wa_pattern": n_wa_pattern(config["fullatt_block_indexes"], int(config["depth"])),
        "clip.vision.attention.layer_norm_epsilon": float(config.get("rms_norm_eps", 1e-6)),
    }


def write_mmproj(path, weights: dict, config: dict, dtype: str = "float32") -> Path:
    """Write the mmproj GGUF llama.cpp loads for the vision encoder; returns the path."""
    import gguf

    meta = mmproj_metadata(config, dtype)
    tensors = mmproj_tensors(weights, config, dtype)
    writer = gguf.GGUFWriter(str(path), ARCH_CLIP)
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_file_type(meta["general.file_type"])
    writer.add_clip_projector_type(meta["clip.projector_type"])
    writer.add_clip_has_vision_encoder(True)
    writer.add_vision_use_silu(True)
    writer.add_vision_projection_dim(meta["clip.vision.projection_dim"])
    writer.add_vision_image_size(meta["clip.vision.image_size"])
    writer.add_vision_patch_size(meta["clip.vision.patch_size"])
    writer.add_vision_embedding_length(meta["clip.vision.embedding_length"])
    writer.add_vision_feed_forward_length(meta["clip.vision.feed_forward_length"])
    writer.add_vision_block_count(meta["clip.vision.block_count"])
    writer.add_vision_head_count(meta["clip.vision.attention.head_count"])
    writer.add_vision_image_mean(meta["clip.vision.image_mean"])
    writer.add_vision_image_std(meta["clip.vision.image_std"])
    writer.add_vision_n_wa_pattern(meta["clip.vision.n_wa_pattern"])
    writer.add_vision_attention_layernorm_eps(meta["clip.vision.attention.layer_norm_epsilon"])
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode table: the 256 single-byte tokens of a byte-level BPE vocabulary."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return [chars[b] for b in range(256)]


SPECIAL_TOKENS = ("<|endoftext|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>")


def write_vocab(path, n_embd: int) -> Path:
    """A weightless qwen2vl text GGUF (byte-level BPE vocab, loaded vocab_only) whose n_embd matches the mmproj."""
    import gguf

    tokens = _byte_tokens() + ["ĠĠ"] + list(SPECIAL_TOKENS)
    types = [gguf.TokenType.NORMAL] * 257 + [gguf.TokenType.CONTROL] * len(SPECIAL_TOKENS)
    writer = gguf.GGUFWriter(str(path), "qwen2vl")
    writer.add_context_length(4096)
    writer.add_embedding_length(int(n_embd))
    writer.add_block_count(1)
    writer.add_feed_forward_length(4 * int(n_embd))
    writer.add_head_count(1)
    writer.add_head_count_kv(1)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_sections([1, 1, 1, 0])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(["Ġ Ġ"])
    writer.add_eos_token_id(257)
    writer.add_bos_token_id(257)
    writer.add_add_bos_token(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def frames_from_pixel_values(
    pixel_values, h: int, w: int, channels: int = 3, temporal: int = 2, patch: int = 14, merge: int = 2
) -> np.ndarray:
    """pixel_values rows of one temporal group (merge-block order, columns (C, T, P, P)) as (T, C, H, W) frames."""
    x = np.asarray(pixel_values, dtype=np.float64).reshape(
        h // merge, w // merge, merge, merge, channels, temporal, patch, patch
    )
    # (bh, bw, mh, mw, C, T, ph, pw) -> (T, C, bh, mh, ph, bw, mw, pw)
    return x.transpose(5, 4, 0, 2, 6, 1, 3, 7).reshape(temporal, channels, h * patch, w * patch)


# ---------------------------------------------------------------------------------------------------------------
# The target: needs llama-cpp-python (import errors are raised when the target is built, not at module import, so the
# GGUF writers above stay usable with gguf alone).


class _GGMLTensor(ctypes.Structure):
    """struct ggml_tensor (ggml/include/ggml.h: GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10,
    GGML_MAX_NAME 64), as in the llama.cpp vendored by llama-cpp-python 0.3.36."""

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
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def _tensor(ptr) -> _GGMLTensor:
    return ctypes.cast(ptr, ctypes.POINTER(_GGMLTensor)).contents


class _Runtime:
    """The llama-cpp-python pieces: mtmd bindings, ggml functions, one vocab model per n_embd."""

    def __init__(self):
        try:
            import llama_cpp
            import llama_cpp.mtmd_cpp as mtmd
        except ImportError as e:
            raise ImportError(
                f"vitspec.adapters.llama_cpp needs llama-cpp-python with llama_cpp.mtmd_cpp (ports/llama_cpp.sh): {e}"
            ) from e
        self.llama, self.mtmd = llama_cpp, mtmd
        lib_dir = Path(llama_cpp.__file__).parent / "lib"
        names = [p for p in ("libggml-base.so", "libggml.so") if (lib_dir / p).exists()]
        if not names:
            raise ImportError(f"llama-cpp-python's ggml library is not in {lib_dir}")
        ggml = ctypes.CDLL(str(lib_dir / names[0]))
        ggml.ggml_op_name.argtypes, ggml.ggml_op_name.restype = [ctypes.c_int], ctypes.c_char_p
        ggml.ggml_nbytes.argtypes, ggml.ggml_nbytes.restype = [ctypes.c_void_p], ctypes.c_size_t
        ggml.ggml_backend_tensor_set.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
        ggml.ggml_backend_tensor_set.restype = None
        self.ggml = ggml
        self.version = getattr(llama_cpp, "__version__", "?")
        llama_cpp.llama_backend_init()
        self._quiet = llama_cpp.llama_log_callback(lambda level, text, user: None)
        if not os.environ.get("VITSPEC_LLAMA_CPP_LOG"):
            llama_cpp.llama_log_set(self._quiet, None)
            mtmd.mtmd_log_set(self._quiet, None)
        self._dir = tempfile.mkdtemp(prefix="vitspec-llama-cpp-")
        self._vocabs: dict[int, int] = {}

    def vocab_model(self, n_embd: int):
        if n_embd not in self._vocabs:
            path = write_vocab(os.path.join(self._dir, f"vocab-{n_embd}.gguf"), n_embd)
            params = self.llama.llama_model_default_params()
            params.vocab_only = True
            model = self.llama.llama_model_load_from_file(str(path).encode(), params)
            if not model:
                raise RuntimeError(f"llama.cpp could not load the vocab-only text GGUF {path}")
            self._vocabs[n_embd] = model
        return self._vocabs[n_embd]


_RUNTIME: _Runtime | None = None


def runtime() -> _Runtime:
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = _Runtime()
    return _RUNTIME


class _Injector:
    """The eval callback: writes frame 0 / frame 1 into inp_raw before the matching patch-embedding im2col runs."""

    KERNELS = {b"v.patch_embd.weight": 0, b"v.patch_embd.weight.1": 1}

    def __init__(self, rt: _Runtime):
        self.rt = rt
        self.frames: np.ndarray | None = None
        self.done: list[int] = []
        self.error: str | None = None
        self.callback = rt.llama.ggml_backend_sched_eval_callback(self._call)

    def _call(self, ptr, ask, user_data):
        try:
            return self._inject(ptr, ask)
        except Exception as e:  # an exception cannot cross the C callback: keep it for _encode to raise
            self.error = f"eval callback: {e!r}"
            return True

    def _inject(self, ptr, ask) -> bool:
        if not ask:
            return True
        t = _tensor(ptr)
        if self.rt.ggml.ggml_op_name(t.op) != b"IM2COL" or not t.src[0] or not t.src[1]:
            return False
        kernel, inp = _tensor(t.src[0]), _tensor(t.src[1])
        if inp.name != b"inp_raw" or kernel.name not in self.KERNELS:
            return False
        frame = self.KERNELS[kernel.name]
        data = np.ascontiguousarray(self.frames[frame], dtype=np.float32)
        nbytes = self.rt.ggml.ggml_nbytes(t.src[1])
        if nbytes != data.nbytes:
            self.error = f"inp_raw holds {nbytes} bytes, the frame {data.nbytes} (shape {list(inp.ne)})"
            return True
        self.rt.ggml.ggml_backend_tensor_set(t.src[1], data.ctypes.data, 0, data.nbytes)
        self.done.append(frame)
        return True  # compute up to this im2col now, so the other frame is written only after it ran


class LlamaCppTarget:
    """llama.cpp's vision encoder (mtmd, CPU) as a vitspec target: vision_tower only."""

    device = "cpu"
    capabilities = {
        "media": ("image", "video"),
        "temporal_patch_sizes": (2,),
        "merge_sizes": (2,),
        "validates_inputs": False,
        "fullatt_layout": "periodic",  # one n_wa_pattern: n_wa_pattern() below refuses any other layout
        "inline": {
            s: "llama.cpp computes it inside its one ggml encoder graph (tools/mtmd/models/qwen2vl.cpp); "
            "only the whole encoder is callable"
            for s in (
                "patch_embed",
                "rotary_position_ids",
                "rotary_angles",
                "rotary_cos_sin",
                "apply_rotary",
                "window_index",
                "cu_seqlens",
                "attention_module",
                "rms_norm",
                "mlp",
                "vision_block",
                "merger",
            )
        },
    }

    def __init__(self, dtype: str = "float32", n_threads: int | None = None, flash_attn: bool = True):
        if dtype not in FTYPES:
            raise ValueError(
                f"the llama.cpp adapter runs float32 (an f32 mmproj) or float16 (an f16 mmproj), got {dtype!r}"
            )
        self.dtype = dtype
        self.n_threads = n_threads or min(4, os.cpu_count() or 1)
        self.flash_attn = flash_attn
        self.rt = runtime()
        self.name = f"llama.cpp (llama-cpp-python {self.rt.version}, mtmd, {dtype} mmproj)"

    def with_options(self, device: str = "cpu", dtype: str | None = None):
        if device != "cpu":
            raise ValueError(f"the llama.cpp adapter runs on device='cpu' only, got {device!r}")
        return LlamaCppTarget(dtype or self.dtype, self.n_threads, self.flash_attn)

    def _context(self, weights, config):
        rt = self.rt
        path = os.path.join(rt._dir, f"mmproj-{os.getpid()}.gguf")
        write_mmproj(path, weights, config, self.dtype)
        injector = _Injector(rt)
        params = rt.mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.n_threads = self.n_threads
        params.warmup = False  # its dummy image is 1288x1288; the flash-attention choice it makes is set below
        # llama.cpp's default (auto) enables flash attention in the warmup when the backend supports it, as the CPU
        # does: K, V and the window mask then go through F16 (clip_graph::build_attn). The same choice, made directly.
        params.flash_attn_type = 1 if self.flash_attn else 0  # LLAMA_FLASH_ATTN_TYPE_ENABLED / _DISABLED
        params.print_timings = False
        params.image_min_tokens = 1
        params.image_max_tokens = 1 << 20
        params.cb_eval = injector.callback
        params.cb_eval_user_data = None
        ctx = rt.mtmd.mtmd_init_from_file(path.encode(), rt.vocab_model(int(config["out_hidden_size"])), params)
        if not ctx:
            raise RuntimeError(
                f"mtmd_init_from_file failed on {path} (set VITSPEC_LLAMA_CPP_LOG=1 for llama.cpp's log)"
            )
        return ctx, injector

    def _encode(self, ctx, injector, frames: np.ndarray, n_embd: int) -> np.ndarray:
        mtmd = self.rt.mtmd
        _, _, H, W = frames.shape
        pixels = (ctypes.c_ubyte * (H * W * 3))()
        bitmap = mtmd.mtmd_bitmap_init(W, H, pixels)
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            marker = mtmd.mtmd_default_marker()
            text = mtmd.mtmd_input_text(marker, len(marker), False, True)
            bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            rc = mtmd.mtmd_tokenize(ctx, chunks, ctypes.byref(text), bitmaps, 1)
            if rc != 0:
                raise RuntimeError(f"mtmd_tokenize returned {rc}")
            image = [mtmd.mtmd_input_chunks_get(chunks, i) for i in range(mtmd.mtmd_input_chunks_size(chunks))]
            image = [c for c in image if mtmd.mtmd_input_chunk_get_type(c) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE]
            if len(image) != 1:
                raise RuntimeError(f"mtmd_tokenize made {len(image)} image chunks, expected 1")
            n_tokens = mtmd.mtmd_input_chunk_get_n_tokens(image[0])
            expected = (H // 28) * (W // 28)
            if n_tokens != expected:
                raise RuntimeError(f"llama.cpp resized the {W}x{H} image: {n_tokens} tokens, expected {expected}")
            injector.frames, injector.done, injector.error = frames, [], None
            rc = mtmd.mtmd_encode_chunk(ctx, image[0])
            if rc != 0:
                raise RuntimeError(f"mtmd_encode_chunk returned {rc}")
            if injector.error or sorted(injector.done) != [0, 1]:
                raise RuntimeError(
                    f"the pixel values did not reach llama.cpp's graph (frames written "
                    f"{injector.done}; {injector.error or 'im2col nodes not seen'})"
                )
            out = mtmd.mtmd_get_output_embd(ctx)
            return np.ctypeslib.as_array(out, shape=(n_tokens * n_embd,)).reshape(n_tokens, n_embd).astype(np.float64)
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            mtmd.mtmd_bitmap_free(bitmap)

    def vision_tower(self, pixel_values, grid_thw, weights, config):
        check_config(config)
        check_weights(weights, config)
        grid = np.asarray(grid_thw, dtype=np.int64).reshape(-1, 3)
        pixel_values = np.asarray(pixel_values, dtype=np.float64)
        P, C = int(config["patch_size"]), int(config["in_channels"])
        ctx, injector = self._context(weights, config)
        try:
            outs, row = [], 0
            for t, h, w in grid.tolist():
                for _ in range(t):
                    rows = pixel_values[row : row + h * w]
                    row += h * w
                    frames = frames_from_pixel_values(rows, h, w, C, 2, P, 2)
                    outs.append(self._encode(ctx, injector, frames, int(config["out_hidden_size"])))
            return np.concatenate(outs, axis=0)
        finally:
            self.rt.mtmd.mtmd_free(ctx)


TARGET = LlamaCppTarget  # a class: load_target instantiates it
