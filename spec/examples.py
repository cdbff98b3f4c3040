"""The source document's worked examples, and the worked values of SPEC-NOTES, as data.

Every number here is copied from the document (seed §1-§4) or from SPEC-NOTES (§1.1, §3, §4);
none is produced by this package. tests/test_document.py recomputes each from the reference.
"""

from __future__ import annotations

# §1: the 8×8 matrix 1..64, row by row.
MATRIX_8X8 = [[8 * r + c + 1 for c in range(8)] for r in range(8)]
TOY_PATCH_SIZE = 2
TOY_NUM_PATCHES = 16
TOY_PATCHES_PER_BAND = 4
TOY_FIRST_PATCH = [1, 2, 9, 10]
TOY_PROJECTION = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]]
TOY_FIRST_PROJECTED = [12.2, 14.4]
TOY_KERNEL = [[1, 0], [0, -1]]
TOY_CONV_FIRST_WINDOWS = [-9, -9]  # [[1,2],[9,10]] -> 1-10; [[2,3],[10,11]] -> 2-11
TOY_CONV_OUTPUT_SIDE = 7  # (8 - 2) / 1 + 1
TOY_CONV_EVERY_VALUE = -9  # the document elides the interior; x[i,j] - x[i+1,j+1] = -9 everywhere
TOY_PATCH_COST = {"projections": 16, "vector_length": 4, "matrix_shape": (4, 2)}
TOY_CONV_COST = {"inner_products": 49, "window_shape": (2, 2)}

# §3: a 224×224 RGB image.
IMAGE_224 = {
    "side": 224,
    "factor": 28,
    "patch_size": 14,
    "patches_per_side": 16,
    "num_patches": 256,
    "values_per_patch": 588,
    "hidden_size": 1280,
    "window_pixels": 112,
    "window_patches_per_side": 8,
    "patches_per_window": 64,
    "num_windows": 4,
    "patches_per_merge_region": 4,
    "merge_region_pixels": 28,
    "num_tokens": 64,
}
# The document's 588-vector order for the first pixels: R1 G1 B1, R2 G2 B2, ...
DOCUMENT_PATCH_ORDER_HEAD = [("R", 1), ("G", 1), ("B", 1), ("R", 2), ("G", 2), ("B", 2)]
MODEL_VALUES_PER_PATCH = 1176  # 3 channels * 2 frames * 14 * 14 (SPEC-NOTES §2)

# SPEC-NOTES §1.1 item 6: smart_resize worked values (HF variant).
SMART_RESIZE_RELEASED = {  # min_pixels 3136, max_pixels 12845056
    (1080, 1920): (1092, 1932),
    (3000, 4000): (2996, 4004),
    (512, 512): (504, 504),
    (70, 70): (56, 56),
    (20, 30): (56, 84),
}
SMART_RESIZE_HF_DEFAULT = {  # min_pixels 3136, max_pixels 1003520
    (1080, 1920): (728, 1316),
    (3000, 4000): (840, 1148),
}
SMART_RESIZE_DIVERGENCE = {  # (h, w) = (1, 200), released budgets: HF vs qwen-vl-utils
    "size": (1, 200),
    "hf": (28, 812),
    "qvu": (28, 196),
}

# SPEC-NOTES §3: windows.
WINDOW_EXAMPLES = {
    (1, 20, 12): {
        "window_cells": [16, 8, 16, 8, 8, 4],
        "cu_window_seqlens": [0, 64, 96, 160, 192, 224, 240],
        "window_index_head": [0, 1, 2, 3, 6, 7, 8, 9, 12, 13, 14, 15, 18, 19, 20, 21, 4, 5, 10, 11],
    },
    (1, 16, 16): {"cu_window_seqlens": [0, 64, 128, 192, 256]},
}

# SPEC-NOTES §4: token counts.
TOKEN_EXAMPLES = {(224, 224): ((1, 16, 16), 64), (1080, 1920): ((1, 78, 138), 2691), (512, 512): ((1, 36, 36), 324)}
