"""The rotary input of apply_rotary, attention_module and vision_block in the form the target declares.

The suite computes RoPE angles with the reference (a helper stage: the stage under check is still the target's)
and hands them over as the target's capabilities say: "angles" (N, head_dim/2) as they are, "cos_sin" as the pair
(cos, sin) of the angles duplicated to head_dim (spec/protocol.py, docs/ARCHITECTURE.md "Stages").
"""

from __future__ import annotations

import numpy as np

from vitspec.reference import rope as ref_rope, windows as ref_windows
from vitspec.tests.capability import declared


def as_form(angles, form: str):
    """angles (N, head_dim/2) in `form`: the array itself, or (cos, sin) each (N, head_dim)."""
    angles = np.asarray(angles, dtype=np.float64)
    if form == "angles":
        return angles
    if form == "cos_sin":
        full = np.concatenate([angles, angles], axis=1)
        return np.cos(full), np.sin(full)
    raise ValueError(f"rotary form must be 'angles' or 'cos_sin', got {form!r}")


def rotary_for(target, angles):
    """Reference angles in the rotary form `target` declares."""
    return as_form(angles, declared(target).rotary)


def permuted(rotary, index, group: int):
    """A rotary input (either form) moved in whole groups of rows, as the tower moves it into window order."""
    if isinstance(rotary, tuple):
        return tuple(ref_windows.permute_groups(a, index, group) for a in rotary)
    return ref_windows.permute_groups(rotary, index, group)


def rows(rotary, a: int, b: int):
    """Rows a:b of a rotary input (either form)."""
    return tuple(r[a:b] for r in rotary) if isinstance(rotary, tuple) else rotary[a:b]


def grid_angles(grid_thw, head_dim: int, merge_size: int = 2, window_order: bool = True) -> np.ndarray:
    """Reference angles of every token of grid_thw, in window order (as the tower's blocks see them) or raster."""
    angles = ref_rope.rotary_angles(ref_rope.rotary_position_ids(grid_thw, merge_size), head_dim)
    if not window_order:
        return angles
    index, _ = ref_windows.window_index(grid_thw, merge_size=merge_size)
    return ref_windows.permute_groups(angles, index, merge_size * merge_size)
