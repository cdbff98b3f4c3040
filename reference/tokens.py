"""Token accounting (SPEC-NOTES §4): placeholders per image and the prompt check."""

from __future__ import annotations

import numpy as np

from vitspec.reference.patchify import thw_rows
from vitspec.spec.configs import IMAGE_PAD_ID
from vitspec.spec.validate import non_negative_int, num_image_tokens_inputs


def num_image_tokens(grid_thw, merge_size: int = 2):
    """Placeholder tokens per image: t*h*w / merge_size**2 (grid in patch units).

    The math only: the input rules (spec/validate.py num_image_tokens_inputs) are applied by reference.TARGET."""
    m = int(merge_size)
    return np.array([t * h * w // (m * m) for t, h, w in thw_rows(grid_thw)], dtype=np.int64)


def expand_image_pads(input_ids, grid_thw, merge_size: int = 2, image_pad_id: int = IMAGE_PAD_ID):
    """Replace the k-th image_pad id of a prompt by num_image_tokens[k] copies of it (one pad per image in)."""
    ids = [non_negative_int(f"input_ids[{i}]", t) for i, t in enumerate(input_ids)]
    num_image_tokens_inputs(grid_thw, merge_size)  # the prompt check takes any grid num_image_tokens takes
    counts = num_image_tokens(grid_thw, merge_size)
    pads = sum(1 for t in ids if t == image_pad_id)
    if pads != len(counts):
        raise ValueError(
            f"input_ids must hold one image pad id ({image_pad_id}) per image: "
            f"found {pads} for {len(counts)} images in grid_thw"
        )
    out, k = [], 0
    for t in ids:
        if t == image_pad_id:
            out.extend([image_pad_id] * int(counts[k]))
            k += 1
        else:
            out.append(t)
    return out


def check_image_tokens(input_ids, num_features: int, image_pad_id: int = IMAGE_PAD_ID) -> int:
    """The prompt's image pad count must equal the vision output rows, else a clear error."""
    n_tokens = sum(1 for i, t in enumerate(input_ids) if non_negative_int(f"input_ids[{i}]", t) == image_pad_id)
    num_features = non_negative_int("num_features", num_features)
    if n_tokens != num_features:
        raise ValueError(
            f"Image features and image tokens do not match: the prompt holds {n_tokens} image pad "
            f"tokens (id {image_pad_id}) but the vision tower returned {num_features} rows"
        )
    return n_tokens
