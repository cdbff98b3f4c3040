"""mlx-vlm's Qwen2.5-VL vision module as a target, on the CPU through the ``mlx-cpu`` wheel.

    pip install 'vitspec[mlx]'        # mlx-cpu, mlx, mlx-vlm
    vitspec verify --target vitspec.adapters.mlx_vlm:TARGET [--dtype bfloat16]
    vitspec verify --target vitspec.adapters.mlx_vlm:QWEN2_VL                  # the Qwen2-VL sibling

Every stage runs mlx-vlm's own code from ``mlx_vlm.models.qwen2_5_vl.vision`` (``qwen2_vl.vision`` for the
sibling): ``VisionModel.rot_pos_emb`` (angles, so ``rotary="angles"``), ``apply_rotary_pos_emb_vision``,
``VisionModel.get_window_index``, ``Attention``, ``MLP``, ``Qwen2VLVisionBlock``, ``PatchMerger``,
``PatchEmbed`` and ``VisionModel.__call__``, with HF weights converted by the port's own ``sanitize``. Only the
vision module files are loaded (old releases import a whole generation stack from the package ``__init__``):
the parent packages are stubs whose ``__path__`` points at the installed files, so ``import`` never runs
``mlx_vlm/__init__.py``.

What the adapter adds is glue only: NumPy in, ``mx.array`` in the target dtype, the port's module built from a
config and loaded with the given weights (``load_weights(..., strict=True)``), NumPy out. It never validates
inputs (``validates_inputs`` False: bad-input checks are not covered) and never calls vitspec's reference or
impl. Two readings of the port's own code, said once here:
- rotary_position_ids: ``rot_pos_emb`` on a head_dim of 4, whose single inverse frequency is 1.0, so its
  angles are the (row, col) position ids themselves, exactly (integers below 2**24 in float32);
- rotary_angles: the port's ``VisionRotaryEmbedding`` table indexed by the position ids, as ``rot_pos_emb``
  indexes it.
Stages the port computes inline (cu_seqlens in ``VisionModel.__call__``, token counts in the processor) are
declared in ``capabilities["inline"]`` with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
import types
from importlib import metadata
from pathlib import Path

import numpy as np

try:
    import mlx.core as mx
    import mlx.nn as nn
except ImportError as e:  # the adapter is useless without MLX: say so when it is loaded
    raise ImportError(
        f"vitspec.adapters.mlx_vlm needs MLX on this machine (pip install 'vitspec[mlx]', which "
        f"installs mlx-cpu on Linux): {e}"
    ) from e

DTYPES = {"float32": mx.float32, "bfloat16": mx.bfloat16, "float16": mx.float16}


def _stub_package(name: str, path: Path) -> types.ModuleType:
    """An empty package module whose submodules load from `path` (its __init__.py is never run)."""
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    module.__package__ = name
    module.__spec__ = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    module.__spec__.submodule_search_locations = [str(path)]
    sys.modules[name] = module
    return module


def load_vision_module(model: str = "qwen2_5_vl") -> types.ModuleType:
    """``mlx_vlm.models.<model>.vision`` without running ``mlx_vlm/__init__.py`` or the model package's."""
    name = f"mlx_vlm.models.{model}.vision"
    if name in sys.modules:
        return sys.modules[name]
    root = _root()
    if not (root / "models" / model / "vision.py").is_file():
        raise ImportError(f"mlx-vlm {version()} has no models/{model}/vision.py")
    for pkg, path in (
        ("mlx_vlm", root),
        ("mlx_vlm.models", root / "models"),
        (f"mlx_vlm.models.{model}", root / "models" / model),
    ):
        if pkg not in sys.modules:
            _stub_package(pkg, path)
    return importlib.import_module(name)


PROCESSOR = "qwen3_vl/processing_qwen3_vl.py"  # the torch-free processors that serve Qwen2.5-VL in later releases


def _root() -> Path:
    spec = importlib.util.find_spec("mlx_vlm") if "mlx_vlm" not in sys.modules else sys.modules["mlx_vlm"].__spec__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("mlx-vlm is not installed (pip install 'vitspec[mlx]')")
    return Path(list(spec.submodule_search_locations)[0])


def has_processor() -> bool:
    """Whether this release ships its own torch-free Qwen-VL processors (0.5.0 on; older ones use HF's)."""
    try:
        path = _root() / "models" / PROCESSOR
        return (
            path.is_file()
            and "class Qwen3VLVideoProcessor" in path.read_text()
            and "def _smart_resize_image" in path.read_text()
        )
    except (ImportError, OSError):
        return False


def load_processor_module() -> types.ModuleType:
    """``mlx_vlm.models.qwen3_vl.processing_qwen3_vl`` through the same stub parents (it needs transformers)."""
    name = "mlx_vlm.models.qwen3_vl.processing_qwen3_vl"
    if name not in sys.modules:
        load_vision_module("qwen2_5_vl")
        if "mlx_vlm.models.qwen3_vl" not in sys.modules:
            _stub_package("mlx_vlm.models.qwen3_vl", _root() / "models" / "qwen3_vl")
    return importlib.import_module(name)


def version() -> str:
    try:
        return metadata.version("mlx-vlm")
    except metadata.PackageNotFoundError:
        return "?"


def _np(x) -> np.ndarray:
    """An mx.array as NumPy: floats as float64 (bfloat16 has no NumPy dtype), integers as int64."""
    if not isinstance(x, mx.array):
        return np.asarray(x)
    if mx.issubdtype(x.dtype, mx.floating):
        return np.array(x.astype(mx.float32), dtype=np.float64)
    return np.array(x).astype(np.int64)


def _ints(x) -> mx.array:
    return mx.array(np.asarray(x, dtype=np.int64).astype(np.int32))


class _Port:
    """What the Qwen2.5-VL and Qwen2-VL targets share: loading, dtype, weights, the stages both modules have."""

    device = "cpu"
    model = "qwen2_5_vl"

    def __init__(self, dtype: str = "float32"):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)} (MLX on the CPU), got {dtype!r}")
        self.dtype, self.mx_dtype = dtype, DTYPES[dtype]
        self.vision = load_vision_module(self.model)
        self.version = version()
        self.name = f"mlx-vlm {self.version} {self.model}"

    def with_options(self, device: str = "cpu", dtype: str | None = None):
        if device != "cpu":
            raise ValueError(f"the mlx-vlm adapter runs on device='cpu' only (mlx-cpu), got {device!r}")
        return type(self)(dtype or self.dtype)

    def _in(self, x) -> mx.array:
        return mx.array(np.asarray(x, dtype=np.float32)).astype(self.mx_dtype)

    def _load(self, module, params: dict):
        """The port's module in the target dtype with exactly these weights (every key, no extra)."""
        module.load_weights([(k, self._in(v)) for k, v in params.items()], strict=True)
        module.eval()
        return module

    def _config(self, **fields):
        """The port's VisionConfig from HF field names (fields it does not have are left out)."""
        VisionConfig = self.vision.VisionConfig
        known = {f.name for f in dataclasses.fields(VisionConfig)}
        return VisionConfig(**{k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items() if k in known})

    def _model(self, **fields):
        return self.vision.VisionModel(self._config(model_type=self.model, **fields))

    # ---- stages -------------------------------------------------------------------------------------------
    def rotary_position_ids(self, grid_thw, merge_size=2):
        """rot_pos_emb on head_dim 4 (one inverse frequency, 1.0): its angles are the (row, col) ids."""
        model = self._model(depth=0, hidden_size=4, num_heads=1, spatial_merge_size=int(merge_size))
        angles = model.rot_pos_emb(_ints(np.asarray(grid_thw).reshape(-1, 3)))
        return np.rint(_np(angles)).astype(np.int64)

    def rotary_angles(self, position_ids, head_dim, theta=10000.0):
        """The port's VisionRotaryEmbedding table (float32, as the port computes it), indexed by the ids."""
        pos = np.asarray(position_ids, dtype=np.int64).reshape(-1, 2)
        rope = self.vision.VisionRotaryEmbedding(int(head_dim) // 2, float(theta))
        table = rope(mx.array(int(pos.max(initial=0)) + 1))
        return _np(table[_ints(pos)].reshape(pos.shape[0], -1))

    def apply_rotary(self, x, rotary):
        out = self.vision.apply_rotary_pos_emb_vision(
            mx.expand_dims(self._in(x), 0), mx.array(np.asarray(rotary, dtype=np.float32))
        )
        return _np(out[0])

    def attention_module(self, x, params, cu_seqlens, rotary, num_heads):
        D = int(np.asarray(x).shape[1])
        attn = self._load(self.vision.Attention(D, num_heads=int(num_heads)), params)
        out = attn(self._in(x), cu_seqlens=_ints(cu_seqlens), rotary_pos_emb=mx.array(np.asarray(rotary, np.float32)))
        return _np(out)

    def patch_embed(self, pixel_values, weight):
        D, C, T, P, _ = np.asarray(weight).shape
        model = self._model(
            depth=0,
            hidden_size=int(D),
            num_heads=1,
            in_channels=int(C),
            temporal_patch_size=int(T),
            patch_size=int(P),
            spatial_patch_size=int(P),
        )
        weights = model.sanitize({"patch_embed.proj.weight": mx.array(np.asarray(weight, np.float32))})
        embed = self._load(model.patch_embed, {"proj.weight": np.array(weights["patch_embed.proj.weight"])})
        return _np(embed(self._in(pixel_values)))


class Qwen25VL(_Port):
    """mlx-vlm's Qwen2.5-VL vision module, float32 by default (MLX's CPU has no float64 matmul)."""

    model = "qwen2_5_vl"
    capabilities = {
        "rotary": "angles",
        "smart_resize_variants": ("hf",),
        "media": ("image", "video"),
        "video_rule": "frames_budget",
        "merge_sizes": (2,),  # VisionModel builds its PatchMerger with the default spatial_merge_size 2
        "validates_inputs": False,
        "inline": {
            "cu_seqlens": "computed inline in VisionModel.__call__ (a cumsum of h*w repeated t times); checked "
            "through vision_tower",
            "num_image_tokens": "computed inline by the processor and the prompt builder; checked through "
            "preprocess's grid_thw",
        },
    }

    def window_index(self, grid_thw, window_size=112, patch_size=14, merge_size=2):
        model = self._model(
            depth=0,
            hidden_size=4,
            num_heads=1,
            window_size=int(window_size),
            patch_size=int(patch_size),
            spatial_patch_size=int(patch_size),
            spatial_merge_size=int(merge_size),
        )
        index, cu = model.get_window_index(_ints(np.asarray(grid_thw).reshape(-1, 3)))
        return _np(index), _np(cu)

    def rms_norm(self, x, weight, eps=1e-6):
        """The norm the port's blocks and merger use: mlx.nn.RMSNorm."""
        norm = self._load(nn.RMSNorm(len(weight), eps=float(eps)), {"weight": weight})
        return _np(norm(self._in(x)))

    def mlp(self, x, params):
        D, hidden = int(np.asarray(x).shape[1]), int(np.asarray(params["gate_proj.weight"]).shape[0])
        return _np(self._load(self.vision.MLP(D, hidden), params)(self._in(x)))

    def vision_block(self, x, params, cu_seqlens, rotary, num_heads, eps=1e-6):
        D = int(np.asarray(x).shape[1])
        config = self._config(
            model_type=self.model,
            hidden_size=D,
            num_heads=int(num_heads),
            intermediate_size=int(np.asarray(params["mlp.gate_proj.weight"]).shape[0]),
        )
        block = self.vision.Qwen2VLVisionBlock(config)
        block.norm1.eps = block.norm2.eps = float(eps)  # the port hard-codes 1e-6; the check's eps is set on it
        block = self._load(block, params)
        out = block(self._in(x), cu_seqlens=_ints(cu_seqlens), rotary_pos_emb=mx.array(np.asarray(rotary, np.float32)))
        return _np(out)

    def merger(self, x, params, merge_size=2, eps=1e-6):
        out_dim, D = int(np.asarray(params["mlp.2.weight"]).shape[0]), int(np.asarray(x).shape[1])
        merger = self.vision.PatchMerger(out_dim, D, int(merge_size))
        merger.ln_q.eps = float(eps)
        return _np(self._load(merger, params)(self._in(x)))

    def vision_tower(self, pixel_values, grid_thw, weights, config):
        model = self._model(**{k: v for k, v in config.items() if k != "model_type"})
        converted = model.sanitize({k: mx.array(np.asarray(v, np.float32)) for k, v in weights.items()})
        model = self._load(model, {k: np.array(v) for k, v in converted.items()})
        return _np(model(self._in(pixel_values), _ints(np.asarray(grid_thw).reshape(-1, 3))))


def video_takes_channels_last(module: types.ModuleType) -> bool:
    """Whether the release's Qwen3VLVideoProcessor takes a (T, H, W, C) video array as decoded (0.6.6 on: its
    ``_prepare_video`` moves the channels first). 0.5.0 to 0.6.5 take (T, C, H, W) only, the layout their
    ``video_generate.load_video`` returns ("Expected video as (T, C, H, W)"): a (T, H, W, C) array is read with H
    as the channels and C as the width."""
    return hasattr(module.Qwen3VLVideoProcessor, "_prepare_video")


class _Processing:
    """smart_resize and preprocess from the release's own processors (Qwen3VLImageProcessor, Qwen3VLVideoProcessor),
    configured as the Qwen2.5-VL checkpoints configure them (patch 14, CLIP mean and std, the given budgets).
    Videos reach the video processor in the layout that release takes (video_takes_channels_last)."""

    def smart_resize(self, height, width, factor=28, min_pixels=3136, max_pixels=12845056, variant="hf"):
        if variant != "hf":
            raise ValueError(f"mlx-vlm has only HF's smart_resize rule (variant 'hf'), got variant={variant!r}")
        module = load_processor_module()
        return tuple(
            module._smart_resize_image(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
        )

    def preprocess(
        self, media, image_min_pixels=3136, image_max_pixels=12845056, video_min_pixels=3136, video_max_pixels=12845056
    ):
        from PIL import Image

        from vitspec.spec.configs import PREPROCESSOR

        module = load_processor_module()
        common = dict(
            patch_size=PREPROCESSOR["patch_size"],
            temporal_patch_size=PREPROCESSOR["temporal_patch_size"],
            merge_size=PREPROCESSOR["merge_size"],
            image_mean=list(PREPROCESSOR["image_mean"]),
            image_std=list(PREPROCESSOR["image_std"]),
        )
        images = module.Qwen3VLImageProcessor(min_pixels=image_min_pixels, max_pixels=image_max_pixels, **common)
        videos = module.Qwen3VLVideoProcessor(min_pixels=video_min_pixels, max_pixels=video_max_pixels, **common)
        channels_last = video_takes_channels_last(module)
        values, grids = [], []
        for item in media:  # in order; images as PIL images, as mlx-vlm's loaders hand them over
            item = np.asarray(item)
            if item.ndim == 4:  # (T, H, W, C) uint8; channels first for the releases that take only that
                out = videos(videos=[item if channels_last else np.ascontiguousarray(item.transpose(0, 3, 1, 2))])
                values.append(out["pixel_values_videos"])
                grids.append(out["video_grid_thw"])
            else:
                out = images(images=[Image.fromarray(item)])
                values.append(out["pixel_values"])
                grids.append(out["image_grid_thw"])
        return np.concatenate(values).astype(np.float64), np.concatenate(grids).astype(np.int64)


class Qwen2VL(_Port):
    """mlx-vlm's Qwen2-VL vision module on the stages it shares with Qwen2.5-VL (its MLP, norms and merger are
    Qwen2-VL's own: LayerNorm and quick-GELU, another model; it has no windows)."""

    model = "qwen2_vl"
    capabilities = {
        "rotary": "angles",
        "validates_inputs": False,
        "inline": {"cu_seqlens": "computed inline in VisionModel.__call__ (Qwen2-VL sibling)"},
    }

    def _config(self, **fields):
        if "hidden_size" in fields:  # Qwen2-VL's vision config calls the width embed_dim
            fields.setdefault("embed_dim", fields["hidden_size"])
        return super()._config(**fields)


class Qwen25VLWithProcessor(_Processing, Qwen25VL):
    """A release with its own processors: smart_resize and preprocess are its too."""


def _qwen25() -> Qwen25VL:
    """The Qwen2.5-VL target of the installed release (with its processor stages where it has them)."""
    return (Qwen25VLWithProcessor if has_processor() else Qwen25VL)()


TARGET = _qwen25  # factories and classes: load_target calls them
QWEN2_VL = Qwen2VL
