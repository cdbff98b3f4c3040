"""Every number of the source document (seed/README.md) recomputed from the reference."""

from __future__ import annotations

import numpy as np
import pytest

from vitspec.reference import patchify as rp, tokens, toy, windows
from vitspec.reference.embed import patch_embed
from vitspec.spec import examples as ex
from vitspec.spec.configs import DISCREPANCIES, DOCUMENT_TABLE, MODELS, RELEASED_TABLE, vision_config

pytestmark = pytest.mark.stage("document")

M = np.array(ex.MATRIX_8X8, dtype=float)


def test_matrix_runs_1_to_64_row_by_row():
    assert M.shape == (8, 8) and M[0, 0] == 1 and M[0, 7] == 8 and M[1, 0] == 9 and M[7, 7] == 64


def test_sixteen_patches_and_first_patch():
    patches = toy.patchify2d(M, ex.TOY_PATCH_SIZE)
    assert patches.shape == (ex.TOY_NUM_PATCHES, 4)
    assert patches[0].tolist() == ex.TOY_FIRST_PATCH
    # four patches per row band: patch 4 starts the second band at row 2
    assert patches[ex.TOY_PATCHES_PER_BAND].tolist() == [17, 18, 25, 26]
    # every patch is the 2×2 block it claims to be
    for n, p in enumerate(patches):
        r, c = divmod(n, 4)
        assert p.tolist() == M[2 * r : 2 * r + 2, 2 * c : 2 * c + 2].reshape(-1).tolist()


def test_projection_of_all_sixteen_patches():
    W = np.array(ex.TOY_PROJECTION)
    patches = toy.patchify2d(M, 2)
    projected = toy.linear(patches, W)
    assert projected.shape == (16, 2)
    np.testing.assert_allclose(projected[0], ex.TOY_FIRST_PROJECTED, rtol=0, atol=1e-12)
    # the document's formula for every vector v_n = patch_n @ W, written out by hand
    for n, p in enumerate(patches):
        a, b, c, d = p
        hand = [a * 0.1 + b * 0.3 + c * 0.5 + d * 0.7, a * 0.2 + b * 0.4 + c * 0.6 + d * 0.8]
        np.testing.assert_allclose(projected[n], hand, rtol=0, atol=1e-12)


def test_convolution_output():
    out = toy.conv2d(M, np.array(ex.TOY_KERNEL, dtype=float), stride=1, bias=0.0)
    assert out.shape == (ex.TOY_CONV_OUTPUT_SIDE, ex.TOY_CONV_OUTPUT_SIDE)
    assert out[0, :2].tolist() == ex.TOY_CONV_FIRST_WINDOWS
    assert np.all(out == ex.TOY_CONV_EVERY_VALUE)
    assert toy.conv_output_size(8, 2, 1) == ex.TOY_CONV_OUTPUT_SIDE
    # the size formula for other strides: (8 - 2) / 2 + 1 = 4, (8 - 3) / 2 + 1 = 3 (floored)
    assert toy.conv2d(M, np.ones((2, 2)), stride=2).shape == (4, 4)
    assert toy.conv_output_size(8, 3, 2) == 3


def test_operation_counts():
    pc = toy.patch_projection_cost(8, 8, 2, channels=1, out_dim=2)
    assert {k: pc[k] for k in ex.TOY_PATCH_COST} == ex.TOY_PATCH_COST
    cc = toy.conv_cost(8, 8, 2, 1)
    assert {k: cc[k] for k in ex.TOY_CONV_COST} == ex.TOY_CONV_COST
    assert pc["multiply_adds"] == 16 * 4 * 2 and cc["multiply_adds"] == 49 * 4


def test_image_224_patches_and_projection():
    d = ex.IMAGE_224
    assert d["side"] % d["factor"] == 0
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3)).astype(float)
    rows = rp.document_patches(image, d["patch_size"])
    assert rows.shape == (d["num_patches"], d["values_per_patch"])
    assert d["patches_per_side"] ** 2 == d["num_patches"]
    # pixel-major, RGB interleaved: R1 G1 B1, R2 G2 B2, ...
    head = [image[0, (i - 1), "RGB".index(ch)] for ch, i in ex.DOCUMENT_PATCH_ORDER_HEAD]
    assert rows[0, :6].tolist() == head
    W = np.random.default_rng(1).standard_normal((d["hidden_size"], d["values_per_patch"]))
    assert toy.linear(rows, W.T).shape == (d["num_patches"], d["hidden_size"])


def test_model_row_is_1176_values():
    frames = np.zeros((2, 3, 224, 224))
    pv, grid = rp.patchify(frames)
    assert pv.shape == (256, ex.MODEL_VALUES_PER_PATCH) and grid.tolist() == [1, 16, 16]
    w = np.zeros((1280, 3, 2, 14, 14))
    assert patch_embed(pv, w).shape == (256, 1280)


def test_windows_of_224():
    d = ex.IMAGE_224
    assert d["window_pixels"] // d["patch_size"] == d["window_patches_per_side"]
    assert d["window_patches_per_side"] ** 2 == d["patches_per_window"]
    _, cu = windows.window_index([[1, 16, 16]])
    sizes = np.diff(cu).tolist()
    assert len(sizes) == d["num_windows"] and all(s == d["patches_per_window"] for s in sizes)
    assert cu.tolist() == ex.WINDOW_EXAMPLES[(1, 16, 16)]["cu_window_seqlens"]


def test_merge_regions_and_tokens_of_224():
    d = ex.IMAGE_224
    assert (d["merge_region_pixels"] // d["patch_size"]) ** 2 == d["patches_per_merge_region"]
    assert tokens.num_image_tokens([[1, 16, 16]]).tolist() == [d["num_tokens"]]
    # every token's four patches are one 28×28 region: the merge-block rows 4k..4k+3
    for k in range(d["num_tokens"]):
        origins = {rp.patch_row_origin(4 * k + i, 16, 16)[1:] for i in range(4)}
        ys, xs = {y for y, _ in origins}, {x for _, x in origins}
        assert len(origins) == 4 and max(ys) - min(ys) == 1 and max(xs) - min(xs) == 1 and min(ys) % 2 == 0


def test_worked_window_example_20x12():
    w = ex.WINDOW_EXAMPLES[(1, 20, 12)]
    index, cu = windows.window_index([[1, 20, 12]])
    assert cu.tolist() == w["cu_window_seqlens"]
    assert (np.diff(cu) // 4).tolist() == w["window_cells"]
    assert index[: len(w["window_index_head"])].tolist() == w["window_index_head"]


@pytest.mark.parametrize("size", sorted(ex.TOKEN_EXAMPLES))
def test_worked_token_counts(size):
    from vitspec.reference.resize import smart_resize

    grid, n = ex.TOKEN_EXAMPLES[size]
    h, w = smart_resize(*size)
    assert (1, h // 14, w // 14) == grid
    assert tokens.num_image_tokens([grid]).tolist() == [n]


@pytest.mark.parametrize("size", sorted(ex.SMART_RESIZE_RELEASED))
def test_smart_resize_worked_values(size):
    from vitspec.reference.resize import smart_resize

    assert smart_resize(*size, min_pixels=3136, max_pixels=12845056) == ex.SMART_RESIZE_RELEASED[size]
    if size in ex.SMART_RESIZE_HF_DEFAULT:
        assert smart_resize(*size, min_pixels=3136, max_pixels=1003520) == ex.SMART_RESIZE_HF_DEFAULT[size]


def test_configuration_table_as_the_document_states_it():
    # the document's table, row by row (seed §2)
    doc = DOCUMENT_TABLE
    assert [doc["llm_hidden_size"][m] for m in MODELS] == [2048, 3584, 8192]
    assert [doc["llm_layers"][m] for m in MODELS] == [36, 28, 80]
    assert [doc["llm_kv_heads"][m] for m in MODELS] == [2, 4, 8]
    assert [doc["llm_intermediate_size"][m] for m in MODELS] == [4864, 18944, 29568]
    assert [doc["merger_out_channels"][m] for m in MODELS] == [2048, 3584, 8192]
    assert [doc["embedding_tying"][m] for m in MODELS] == [True, False, False]
    for m in MODELS:
        assert (doc["vit_hidden_size"][m], doc["vit_layers"][m], doc["vit_heads"][m]) == (1280, 32, 16)
        assert (doc["vit_intermediate_size"][m], doc["patch_size"][m], doc["window_size"][m]) == (3456, 14, 112)
        assert doc["fullatt_block_indexes"][m] == [7, 15, 23, 31] and doc["merger_in_channels"][m] == 1280
        assert doc["llm_head_size"][m] == 128 and doc["vocab_size"][m] == 151646 and doc["trained_tokens"][m] == "4.1T"


def test_released_config_and_discrepancies():
    assert [vision_config(m)["intermediate_size"] for m in MODELS] == [3420, 3420, 3456]
    assert [vision_config(m)["out_hidden_size"] for m in MODELS] == [2048, 3584, 8192]
    differing = {row for row in DOCUMENT_TABLE if DOCUMENT_TABLE[row] != RELEASED_TABLE[row]}
    recorded = {d["row"] for d in DISCREPANCIES}
    assert differing <= recorded, f"unrecorded discrepancies: {differing - recorded}"
    assert "patch layout" in recorded
    # 151646 cannot be an embedding size: the image pad id lies beyond it
    from vitspec.spec.configs import IMAGE_PAD_ID

    assert IMAGE_PAD_ID >= DOCUMENT_TABLE["vocab_size"]["7B"]
    assert all(IMAGE_PAD_ID < RELEASED_TABLE["vocab_size"][m] for m in MODELS)
