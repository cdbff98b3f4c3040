"""Image and pixel_values helpers shared by the preprocessing tests: seeded test images, the installed Pillow's
pass order, and the absolute pixel_values tolerance with its comparison."""

from __future__ import annotations

import numpy as np

from vitspec.tests.checks import to_numpy

PATTERNS = ("random", "gradient", "checkerboard", "constant")


def make_image(seed: int, height: int, width: int, pattern: str) -> np.ndarray:
    """A uint8 (H, W, 3) test image: noise, smooth ramps, sharp 0/255 edges (overshoot and clipping), or flat."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    if pattern == "random":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if pattern == "gradient":
        ramps = [x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1), (x + y) * 255 / max(height + width - 2, 1)]
        return np.stack(ramps, axis=-1).round().astype(np.uint8)
    if pattern == "checkerboard":
        cell = int(rng.integers(1, 5))
        board = ((y // cell + x // cell) % 2 * 255).astype(np.uint8)
        return np.repeat(board[:, :, None], 3, axis=2)
    return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (height, width, 3)).copy()


def installed_pass_order() -> str:
    """The pass-order rule of the installed Pillow (the vertical-first rule arrived in Pillow 13)."""
    import PIL

    return "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "horizontal_first"


U32 = 2.0**-24  # float32 unit roundoff
# Tolerances of pixel_values against the float64 reference, as absolute error per element.
# Normalized values are (x/255 - mean)/std with x/255 in [0, 1], mean <= 0.482, std >= 0.261, |value| <= 2.15.
# A float32 pipeline rounds x/255, mean, the difference (numerator <= u*(1 + 0.482 + 0.6) = 2.08u, / std: 8.0u)
# and std and the quotient (2u * 2.15 = 4.3u): at most 12.3u. The impl's x*scale + shift rounds scale, shift,
# the product and the sum: u*(3.83 + 3.83 + 1.84 + 2.15) = 11.7u. Measured: HF 4.7u, impl 4.0u (1080x1920).
# The smallest planted bug each must reject: one level of one pixel = 1/255/0.2758 = 0.0142 (2.4e5 u);
# rescale by 1/256: up to 0.0144; normalizing in float16: ~1e-3.
ATOL = {
    "float32": 13 * U32,  # HF's PIL processor and the impl at its default float32 output
    "float64": 1e-12,  # the impl asked for float64 output (a few ulps of float64)
}


def check_close(got, expected, atol: float, what: str) -> None:
    """pixel_values within atol of the float64 reference, element by element (AssertionError otherwise)."""
    got, expected = to_numpy(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    err = np.abs(got - expected)
    worst = np.unravel_index(int(np.argmax(err)), err.shape)
    assert err[worst] <= atol, (
        f"{what}: |error| {err[worst]:.3g} > {atol:.3g} at {worst} "
        f"(got {got[worst]!r}, reference {expected[worst]!r}); {int((err > atol).sum())} "
        f"of {err.size} elements exceed it"
    )
