"""Patch embedding (SPEC-NOTES §2, §3): against the reference under the tolerance model, and conv-vs-patch:
a 2-D conv with kernel = stride = p is patchify + projection, the Conv3d is one matmul, a still image is a 2-D
conv with the temporally summed kernel, and the document's 588-value layout is the model's after the stated
permutation. Each invariant has a negative control."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

from vitspec.reference import embed as ref_embed, patchify as ref_patchify, rope as ref_rope, toy
from vitspec.tests import baseline, strategies as S, tolerance
from vitspec.tests.checks import assert_close, fail, target_dtype


def embed_weight(seed: int, hidden: int) -> np.ndarray:
    return S.normal(seed, (hidden, 3, 2, 14, 14), 1.0 / np.sqrt(1176))


@pytest.mark.stage("patch_embed")
@given(st.integers(1, 64), st.sampled_from([32, 64, 80]), S.seeds)
def test_patch_embed_matches_reference(stage, target, rows, hidden, seed):
    dtype = target_dtype(target)
    x, w = S.pixel_values(seed, [(1, 1, rows)]), embed_weight(seed + 1, hidden)
    assert_close(
        "patch_embed",
        stage("patch_embed")(x, w),
        ref_embed.patch_embed(x, w),
        K=1176,
        magnitude=tolerance.terms(x, w.reshape(hidden, -1)),
        dtype=dtype,
        baseline=lambda: baseline.patch_embed(x, w, dtype),
        rows=rows,
        hidden=hidden,
        seed=seed,
    )


def check_conv_is_patch_projection(patchify2d, image, kernel, p: int) -> None:
    """CONV-PATCH: conv2d(image, kernel, stride=p) equals patchify2d(image, p) @ kernel.reshape(-1), patch by patch."""
    conv = toy.conv2d(image, kernel, stride=p).reshape(-1)
    projected = toy.linear(patchify2d(image, p), kernel.reshape(-1, 1))[:, 0]
    if conv.shape != projected.shape or not np.allclose(conv, projected, rtol=1e-12, atol=1e-12):
        fail(
            "patch_embed",
            "conv2d with kernel = stride = p differs from patchify + projection",
            dict(image=image.shape, p=p),
        )


@pytest.mark.conformance
@pytest.mark.stage("patch_embed")
@given(st.sampled_from([(2, 4, 4), (2, 8, 8), (3, 6, 9), (14, 28, 42), (14, 56, 28)]), S.seeds)
def test_conv_is_patch_projection(sizes, seed):
    p, h, w = sizes
    check_conv_is_patch_projection(toy.patchify2d, S.normal(seed, (h, w)), S.normal(seed + 1, (p, p)), p)


@pytest.mark.negative_control
@pytest.mark.stage("patch_embed")
def test_conv_patch_check_rejects_transposed_patches():
    image, kernel = S.normal(0, (8, 8)), S.normal(1, (2, 2))
    check_conv_is_patch_projection(toy.patchify2d, image, kernel, 2)
    column_major = lambda x, p: toy.patchify2d(x.T, p)  # noqa: E731  patches read down the columns
    with pytest.raises(AssertionError, match="differs from patchify"):
        check_conv_is_patch_projection(column_major, image, kernel, 2)


def check_conv3d_is_matmul(matmul, x, w) -> None:
    """CONV3D-MATMUL: the Conv3d with kernel = stride on x.view(-1, C, T, P, P) equals x @ W.reshape(D, -1).T."""
    conv = F.conv3d(torch.from_numpy(x).view(-1, 3, 2, 14, 14), torch.from_numpy(w), stride=(2, 14, 14))
    conv = conv.view(x.shape[0], -1).numpy()
    for name, got in (
        ("vitspec.reference.embed.patch_embed_conv", ref_embed.patch_embed_conv(x, w)),
        ("matmul", matmul(x, w)),
    ):
        if not np.allclose(got, conv, rtol=1e-12, atol=1e-12):
            fail("patch_embed", f"{name} differs from torch's Conv3d (kernel = stride)", dict(rows=x.shape[0]))


@pytest.mark.conformance
@pytest.mark.stage("patch_embed")
@given(st.integers(1, 16), S.seeds)
def test_conv3d_is_one_matmul(rows, seed):
    check_conv3d_is_matmul(ref_embed.patch_embed, S.pixel_values(seed, [(1, 1, rows)]), embed_weight(seed, 32))


@pytest.mark.negative_control
@pytest.mark.stage("patch_embed")
def test_conv3d_check_rejects_time_channel_swap():
    x, w = S.pixel_values(0, [(1, 1, 4)]), embed_weight(1, 32)
    swapped = lambda x, w: x @ w.transpose(0, 2, 1, 3, 4).reshape(w.shape[0], -1).T  # noqa: E731  (T, C, P, P)
    with pytest.raises(AssertionError, match="matmul differs"):
        check_conv3d_is_matmul(swapped, x, w)


def still_image(seed: int, h: int, w: int):
    """A still image as two identical frames, its pixel_values rows and its (row, col) per row."""
    frame = S.rng(seed).uniform(-1.8, 2.2, (3, 14 * h, 14 * w))
    rows, grid = ref_patchify.patchify(np.stack([frame, frame]))
    return frame, rows, ref_rope.rotary_position_ids(grid[None])


def check_still_image_is_2d_conv(patch_embed, seed, h, w, hidden, dtype) -> None:
    """CONV-STILL: for two identical frames the Conv3d equals a 2-D conv with kernel W[:, :, 0] + W[:, :, 1]."""
    frame, rows, pos = still_image(seed, h, w)
    weight = embed_weight(seed + 1, hidden)
    conv2d = F.conv2d(torch.from_numpy(frame)[None], torch.from_numpy(weight.sum(axis=2)), stride=14)[0].numpy()
    expected = conv2d[:, pos[:, 0], pos[:, 1]].T
    assert_close(
        "patch_embed",
        patch_embed(rows, weight),
        expected,
        K=1176,
        magnitude=tolerance.terms(rows, weight.reshape(hidden, -1)),
        dtype=dtype,
        baseline=lambda: baseline.patch_embed(rows, weight, dtype),
        check="still image = 2-D conv",
        grid_thw=[(1, h, w)],
        seed=seed,
    )


@pytest.mark.stage("patch_embed")
@given(S.seeds, st.integers(1, 3), st.integers(1, 3))
def test_still_image_is_2d_conv_with_summed_kernel(stage, target, seed, ch, cw):
    check_still_image_is_2d_conv(stage("patch_embed"), seed, 2 * ch, 2 * cw, 32, target_dtype(target))


@pytest.mark.negative_control
@pytest.mark.stage("patch_embed")
def test_still_image_check_rejects_one_temporal_slice():
    def one_slice(x, w):
        return (
            2 * x.reshape(-1, 3, 2, 196)[:, :, 0].reshape(len(x), -1) @ w[:, :, 0].reshape(len(w), -1).T
        )  # the conv kernel reduced to one temporal slice

    check_still_image_is_2d_conv(ref_embed.patch_embed, 0, 2, 4, 32, "float32")
    with pytest.raises(AssertionError, match="exceeds the tolerance"):
        check_still_image_is_2d_conv(one_slice, 0, 2, 4, 32, "float32")


def check_document_layout(perm, patch_embed, seed, h, w, dtype) -> None:
    """LAYOUT-DOCUMENT: the document's (P, P, C) row, permuted, is the model's first-frame (C, P, P) row; its
    projection by still_image_kernel_as_document(W) equals the model's patch embedding of the still image."""
    frame, rows, pos = still_image(seed, h, w)
    doc = ref_patchify.document_patches(frame.transpose(1, 2, 0))  # raster order of patches
    doc_for_rows = doc[pos[:, 0] * w + pos[:, 1]]
    first_frame = rows.reshape(-1, 3, 2, 196)[:, :, 0].reshape(len(rows), -1)
    if not np.array_equal(doc_for_rows[:, perm], first_frame):
        fail("patch_embed", "document row [perm] differs from the model row's first frame", dict(grid_thw=[(1, h, w)]))
    weight = embed_weight(seed + 1, 32)
    projected = doc_for_rows @ ref_patchify.still_image_kernel_as_document(weight).T
    assert_close(
        "patch_embed",
        patch_embed(rows, weight),
        projected,
        K=1176,
        magnitude=tolerance.terms(rows, weight.reshape(32, -1)),
        dtype=dtype,
        baseline=lambda: baseline.patch_embed(rows, weight, dtype),
        check="588 layout",
        seed=seed,
    )


@pytest.mark.stage("patch_embed")
@given(S.seeds, st.integers(1, 2), st.integers(1, 3))
def test_document_588_layout_is_the_model_layout(stage, target, seed, ch, cw):
    check_document_layout(
        ref_patchify.document_to_model_columns(), stage("patch_embed"), seed, 2 * ch, 2 * cw, target_dtype(target)
    )


@pytest.mark.negative_control
@pytest.mark.stage("patch_embed")
def test_document_layout_check_rejects_swapped_pixel_axes():
    perm = ref_patchify.document_to_model_columns()
    swapped = perm.reshape(3, 14, 14).transpose(0, 2, 1).reshape(-1)  # pixel column before pixel row
    check_document_layout(perm, ref_embed.patch_embed, 0, 2, 2, "float32")
    with pytest.raises(AssertionError, match="differs from the model row"):
        check_document_layout(swapped, ref_embed.patch_embed, 0, 2, 2, "float32")
