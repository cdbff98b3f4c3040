"""The optimized torch implementation as a target: every stage of spec/protocol.py on one device and dtype."""

from __future__ import annotations

import torch

from vitspec.impl import (
    attention as _attention,
    block as _block,
    embed as _embed,
    merger as _merger,
    rope as _rope,
    tokens as _tokens,
    tower as _tower,
    windows as _windows,
)
from vitspec.impl.weights import IdentityCache, dtype_name, torch_dtype
from vitspec.spec.configs import PREPROCESSOR, VIDEO_PREPROCESSOR
from vitspec.spec.protocol import ROTARY_FORMS
from vitspec.spec.validate import (
    cu_seqlens_inputs,
    num_image_tokens_inputs,
    preprocess_inputs,
    rotary_position_ids_inputs,
    smart_resize_inputs,
    vision_block_inputs,
    window_index_inputs,
)


def _stage(fn, numeric: bool = True):
    """A method calling fn with this target's device (and dtype for numeric stages)."""

    def method(self, *args, **kwargs):
        if numeric:
            kwargs.setdefault("dtype", self.torch_dtype)
        kwargs.setdefault("device", self.device)
        return fn(*args, **kwargs)

    method.__name__ = fn.__name__
    method.__doc__ = fn.__doc__
    return method


class TorchTarget:
    """Every stage in torch on `device` in `dtype` (compile=True: element-wise parts under torch.compile)."""

    name = "impl"

    def __init__(self, device: str = "cpu", dtype="float32", compile: bool = False, rotary: str = "angles"):
        if rotary not in ROTARY_FORMS:
            raise ValueError(f"rotary must be one of {list(ROTARY_FORMS)}, got {rotary!r}")
        self.rotary = rotary
        self.device = str(torch.device(device))
        self.torch_dtype = torch_dtype(dtype)
        self.dtype = dtype_name(self.torch_dtype)
        self.compile = bool(compile)
        self._graphs = IdentityCache(maxsize=8)

    def __repr__(self) -> str:
        return (
            f"TorchTarget(device={self.device!r}, dtype={self.dtype!r}, compile={self.compile}, rotary={self.rotary!r})"
        )

    @property
    def capabilities(self) -> dict:
        """What this target declares (spec/protocol.py Capabilities): it validates its inputs, and its rotary form."""
        return {"validates_inputs": True, "rotary": self.rotary}

    def with_options(self, device=None, dtype=None, compile=None, rotary=None) -> TorchTarget:
        """A copy on another device, dtype, compile setting or rotary form ("angles" or "cos_sin")."""
        return TorchTarget(
            self.device if device is None else device,
            self.dtype if dtype is None else dtype,
            self.compile if compile is None else compile,
            self.rotary if rotary is None else rotary,
        )

    @property
    def ops(self) -> _block.Elementwise:
        """The element-wise pieces this target runs (fused/eager, or compiled)."""
        return _block.compiled() if self.compile else _block.EAGER

    # Preprocessing (host, NumPy): delegated to the preprocessing modules.
    def smart_resize(self, height, width, factor=28, min_pixels=3136, max_pixels=12845056, variant="hf"):
        """vitspec.impl.resize.smart_resize."""
        from vitspec.impl.resize import smart_resize

        smart_resize_inputs(height, width, factor, min_pixels, max_pixels, variant)
        return smart_resize(height, width, factor, min_pixels, max_pixels, variant)

    def resize(self, image, height, width):
        """vitspec.impl.resize.resize."""
        from vitspec.impl.resize import resize

        return resize(image, height, width)

    def preprocess(
        self,
        media,
        image_min_pixels=PREPROCESSOR["min_pixels"],
        image_max_pixels=PREPROCESSOR["max_pixels"],
        video_min_pixels=VIDEO_PREPROCESSOR["min_pixels"],
        video_max_pixels=VIDEO_PREPROCESSOR["max_pixels"],
    ):
        """vitspec.impl.pixels.preprocess (videos sized per frame, like images)."""
        from vitspec.impl.pixels import preprocess

        budgets = (image_min_pixels, image_max_pixels, video_min_pixels, video_max_pixels)
        preprocess_inputs(media, *budgets, video_rule="per_frame")
        return preprocess(media, *budgets, video_rule="per_frame")

    def patchify(self, frames, patch_size=14, temporal_patch_size=2, merge_size=2):
        """vitspec.impl.patchify.patchify."""
        from vitspec.impl.patchify import patchify

        return patchify(frames, patch_size, temporal_patch_size, merge_size)

    patch_embed = _stage(_embed.patch_embed)

    def rotary_position_ids(self, grid_thw, merge_size=2):
        """Patch coordinates per pixel_values row; see vitspec.impl.rope.rotary_position_ids."""
        rotary_position_ids_inputs(grid_thw, merge_size)
        return _rope.rotary_position_ids(grid_thw, merge_size, device=self.device)

    rotary_angles = _stage(_rope.rotary_angles)
    rotary_cos_sin = _stage(_rope.rotary_cos_sin)

    def apply_rotary(self, x, rotary):
        """RoPE on x (N, heads, head_dim); rotary in this target's form; see vitspec.impl.rope.apply_rotary."""
        return _rope.apply_rotary(x, rotary, form=self.rotary, dtype=self.torch_dtype, device=self.device)

    def attention_module(self, x, params, cu_seqlens, rotary, num_heads):
        """qkv, RoPE, segment attention, proj; see vitspec.impl.attention.attention_module."""
        return _attention.attention_module(
            x, params, cu_seqlens, rotary, num_heads, form=self.rotary, dtype=self.torch_dtype, device=self.device
        )

    def window_index(self, grid_thw, window_size=112, patch_size=14, merge_size=2):
        """(window_index, cu_window_seqlens); see vitspec.impl.windows.window_index."""
        window_index_inputs(grid_thw, window_size, patch_size, merge_size)
        return _windows.window_index(grid_thw, window_size, patch_size, merge_size, device=self.device)

    def cu_seqlens(self, grid_thw, merge_size=2):
        """One full-attention segment per image per frame; see vitspec.impl.windows.cu_seqlens."""
        cu_seqlens_inputs(grid_thw, merge_size)
        return _windows.cu_seqlens(grid_thw, merge_size, device=self.device)

    attention = _stage(_attention.attention)
    rms_norm = _stage(_block.rms_norm)
    mlp = _stage(_block.mlp)
    merger = _stage(_merger.merger)

    def vision_block(self, x, params, cu_seqlens, rotary, num_heads, eps=1e-6):
        """One block; rotary in this target's form; see vitspec.impl.block.vision_block."""
        vision_block_inputs(x, params, cu_seqlens, rotary, num_heads, eps, self.rotary)
        return _block.vision_block(
            x,
            params,
            cu_seqlens,
            rotary,
            num_heads,
            eps,
            form=self.rotary,
            dtype=self.torch_dtype,
            device=self.device,
            ops=self.ops,
        )

    def num_image_tokens(self, grid_thw, merge_size=2):
        """Placeholder tokens per image; see vitspec.impl.tokens.num_image_tokens."""
        num_image_tokens_inputs(grid_thw, merge_size)
        return _tokens.num_image_tokens(grid_thw, merge_size, device=self.device)

    def vision_tower(self, pixel_values, grid_thw, weights, config, cuda_graph: bool = False):
        """The whole tower; cuda_graph=True replays a graph captured once per (grid, weights) on CUDA."""
        if not cuda_graph:
            return _tower.vision_tower(
                pixel_values, grid_thw, weights, config, dtype=self.torch_dtype, device=self.device, ops=self.ops
            )
        return self.fixed_grid_tower(grid_thw, weights, config)(pixel_values)

    def fixed_grid_tower(self, grid_thw, weights, config) -> _tower.FixedGridTower:
        """The tower bound to one grid (a CUDA graph on CUDA), cached per weights dict, grid and config."""
        from vitspec.spec.validate import grid_rows

        if not isinstance(weights, dict) or not isinstance(config, dict):
            return _tower.compile_tower(
                grid_thw, weights, config, dtype=self.torch_dtype, device=self.device, ops=self.ops
            )
        key = (
            tuple(grid_rows(grid_thw, config.get("spatial_merge_size", 2))),
            tuple(sorted((k, str(v)) for k, v in config.items())),
        )
        return self._graphs.get(
            weights,
            key,
            lambda: _tower.compile_tower(
                grid_thw, weights, config, dtype=self.torch_dtype, device=self.device, ops=self.ops
            ),
        )

    def clear_caches(self) -> None:
        """Drop captured graphs and prepared weights (frees their device memory)."""
        self._graphs.clear()
        _tower._PREPARED.clear()
        _tower.tower_plan.cache_clear()
