"""Token accounting (SPEC-NOTES §4): placeholder tokens per image."""

from __future__ import annotations

import torch

from vitspec.spec.validate import grid_rows


def num_image_tokens(grid_thw, merge_size: int = 2, *, device="cpu") -> torch.Tensor:
    """t*h*w / merge_size**2 per image (grid in patch units)."""
    counts = [t * h * w // (merge_size * merge_size) for t, h, w in grid_rows(grid_thw, merge_size)]
    return torch.tensor(counts, dtype=torch.int64, device=device)
