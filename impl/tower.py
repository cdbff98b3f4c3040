"""The whole vision tower (SPEC-NOTES §3): pixel_values, grid_thw -> merged tokens in raster order.

Inside the tower the merged cells follow one internal order: windows sorted by size (full windows
first, then each partial size; stable, so the spec's window order within a size), cells row-major
inside each window. Every block then sees its segments as a few runs of equal length (impl/attention.py);
full-attention blocks gather the tokens into frame order only when there are several frames. All
index data, RoPE angles and segment runs are computed once per grid on the host (cached per grid,
geometry and device), so the block loop never synchronises with the device; the merger's output is
put back in raster order with the inverse of the internal order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vitspec.impl.attention import SegmentPlan, segment_plan
from vitspec.impl.block import EAGER, BlockWeights, Elementwise, block_forward, prepare_block
from vitspec.impl.embed import embed_matrix
from vitspec.impl.merger import MergerWeights, merger_forward, prepare_merger
from vitspec.impl.rope import half_angles, position_ids
from vitspec.impl.weights import IdentityCache, rope_dtype, to_tensor
from vitspec.impl.windows import inverse_permutation, window_cells, window_layout
from vitspec.spec.configs import RMS_NORM_EPS, ROPE_THETA
from vitspec.spec.protocol import subdict
from vitspec.spec.validate import check_config, check_weights, grid_rows, require_ndim, require_rows_match_grid


@dataclass(frozen=True)
class TowerPlan:
    """Everything the tower needs from the grid alone, on the device."""

    num_patches: int
    unit: int  # rows per merged cell, merge_size**2
    cell_order: torch.Tensor  # internal order of merged cells (ids in pixel_values order)
    cell_inverse: torch.Tensor  # cell_inverse[cell_order[i]] = i
    rope: torch.Tensor  # (N, head_dim/2, 2) [cos, sin] per rotation pair, internal token order
    window: SegmentPlan
    full: SegmentPlan


@functools.lru_cache(maxsize=32)
def tower_plan(rows: tuple, side: int, merge_size: int, head_dim: int, device: str, wide: torch.dtype) -> TowerPlan:
    """Internal cell order, its inverse, RoPE angles and the window and full segment runs of one grid."""
    unit = merge_size * merge_size
    index, sizes, frame_of_window, frame_sizes = window_layout(rows, side, merge_size)
    by_size = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(by_size)
    rank[by_size] = np.arange(by_size.size)
    window_of_cell = np.repeat(np.arange(sizes.size), sizes)
    order = np.argsort(rank[window_of_cell], kind="stable")
    cells = index[order]
    tokens = (cells[:, None] * unit + np.arange(unit)).reshape(-1)
    window = segment_plan(sizes[by_size] * unit, device)
    if frame_sizes.size == 1:
        full = segment_plan(frame_sizes * unit, device)
    else:
        by_frame = np.argsort(frame_of_window[window_of_cell][order], kind="stable")
        full = segment_plan(frame_sizes * unit, device, (by_frame[:, None] * unit + np.arange(unit)).reshape(-1))
    angles = half_angles(position_ids(rows, merge_size)[tokens].astype(np.float64), head_dim, ROPE_THETA)
    rope = torch.from_numpy(np.stack([np.cos(angles), np.sin(angles)], axis=-1)).to(dtype=wide, device=device)
    cell_order = torch.from_numpy(cells).to(device)
    return TowerPlan(int(tokens.size), unit, cell_order, inverse_permutation(cell_order), rope, window, full)


@dataclass(frozen=True)
class TowerWeights:
    """The prepared weights of the whole tower."""

    embed: torch.Tensor  # (D, C*T*P*P)
    blocks: tuple[BlockWeights, ...]
    merger: MergerWeights
    full_blocks: frozenset


_PREPARED = IdentityCache(maxsize=4)


def prepare_weights(weights: dict, config: dict, dtype: torch.dtype, device) -> TowerWeights:
    """Checked, cast, fused and reordered tower weights, built once per (weights dict, config, dtype, device)."""
    device = torch.device(device)
    # every config value the checked shapes and the build read: another config re-runs check_weights
    key = (str(device), dtype) + tuple(sorted((str(k), repr(v)) for k, v in config.items()))

    if not isinstance(weights, dict):
        check_weights(weights, config)  # raises the reference's TypeError

    def build():
        check_weights(weights, config)
        blocks = tuple(
            prepare_block(subdict(weights, f"blocks.{i}"), config["num_heads"], dtype, device)
            for i in range(config["depth"])
        )
        return TowerWeights(
            embed_matrix(weights["patch_embed.proj.weight"], dtype, device),
            blocks,
            prepare_merger(subdict(weights, "merger"), dtype, device),
            frozenset(int(i) for i in config["fullatt_block_indexes"]),
        )

    return _PREPARED.get(weights, key, build)


def run_tower(pixel_values: torch.Tensor, w: TowerWeights, plan: TowerPlan, ops: Elementwise = EAGER) -> torch.Tensor:
    """Embed in internal order, run the blocks (full segments at fullatt_block_indexes), merge, back to raster order."""
    N, unit = plan.num_patches, plan.unit
    x = pixel_values.reshape(N // unit, -1).index_select(0, plan.cell_order).reshape(N, -1)
    x = F.linear(x, w.embed)
    for i, block in enumerate(w.blocks):
        x = block_forward(x, block, plan.rope, plan.full if i in w.full_blocks else plan.window, RMS_NORM_EPS, ops)
    return merger_forward(x, w.merger, unit, RMS_NORM_EPS).index_select(0, plan.cell_inverse)


def check_pixels(pixel_values, rows, columns: int | None = None) -> None:
    """pixel_values is (num_patches of the grid, channels*temporal*patch*patch)."""
    require_ndim("pixel_values", pixel_values, 2, "(num_patches, channels*temporal*patch*patch)")
    require_rows_match_grid("pixel_values", pixel_values, rows)
    if columns is not None:
        check_columns(pixel_values, columns)


def check_columns(pixel_values, columns: int) -> None:
    """pixel_values rows hold `columns` values (the embedding's channels*temporal*patch*patch)."""
    if int(pixel_values.shape[1]) != columns:
        raise ValueError(
            f"pixel_values rows must hold channels*temporal*patch*patch = {columns} values, "
            f"got {int(pixel_values.shape[1])}"
        )


def setup(pixel_values, grid_thw, weights, config, dtype, device):
    """Check every input as the reference does; return (rows, prepared weights, plan)."""
    cfg = check_config(config)
    m = cfg["spatial_merge_size"]
    rows = grid_rows(grid_thw, m)
    if pixel_values is not None:
        check_pixels(pixel_values, rows)
    prepared = prepare_weights(weights, cfg, dtype, device)
    if pixel_values is not None:
        check_columns(pixel_values, int(prepared.embed.shape[1]))  # rows and rank checked above
    side = window_cells(cfg["window_size"], cfg["patch_size"], m)
    plan = tower_plan(
        tuple(rows), side, m, cfg["hidden_size"] // cfg["num_heads"], str(torch.device(device)), rope_dtype(dtype)
    )
    return rows, prepared, plan


def vision_tower(
    pixel_values, grid_thw, weights, config, *, dtype=torch.float32, device="cpu", ops: Elementwise = EAGER
) -> torch.Tensor:
    """Merged tokens (N/4, out_hidden_size) in raster order, in the model dtype."""
    _, prepared, plan = setup(pixel_values, grid_thw, weights, config, dtype, device)
    with torch.inference_mode():
        return run_tower(to_tensor(pixel_values, dtype, device), prepared, plan, ops)


class FixedGridTower:
    """The tower bound to one grid and weights: a CUDA graph captured once and replayed on CUDA, eager elsewhere."""

    def __init__(
        self,
        grid_thw,
        weights,
        config,
        *,
        dtype=torch.float32,
        device="cpu",
        ops: Elementwise = EAGER,
        cuda_graph: bool = True,
    ):
        self.rows, self.weights, self.plan = setup(None, grid_thw, weights, config, dtype, device)
        self.dtype, self.device, self.ops = dtype, torch.device(device), ops
        self.graph = None
        if cuda_graph and self.device.type == "cuda":
            with torch.inference_mode():
                self.capture()

    def capture(self) -> None:
        """Warm up on a side stream, then record one forward pass on a static input buffer."""
        self.static_in = torch.randn(
            self.plan.num_patches, self.weights.embed.shape[1], device=self.device, dtype=self.dtype
        )
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                run_tower(self.static_in, self.weights, self.plan, self.ops)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = run_tower(self.static_in, self.weights, self.plan, self.ops)

    def __call__(self, pixel_values) -> torch.Tensor:
        """Merged tokens for pixel_values of this grid (a fresh tensor: later calls do not overwrite it)."""
        check_pixels(pixel_values, self.rows, int(self.weights.embed.shape[1]))
        with torch.inference_mode():
            x = to_tensor(pixel_values, self.dtype, self.device)
            if self.graph is None:
                return run_tower(x, self.weights, self.plan, self.ops)
            self.static_in.copy_(x)
            self.graph.replay()
            return self.static_out.clone()


def compile_tower(
    grid_thw, weights, config, *, dtype=torch.float32, device="cpu", ops: Elementwise = EAGER, cuda_graph: bool = True
) -> FixedGridTower:
    """A callable pixel_values -> merged tokens for one fixed grid (a CUDA graph on CUDA devices)."""
    return FixedGridTower(grid_thw, weights, config, dtype=dtype, device=device, ops=ops, cuda_graph=cuda_graph)
