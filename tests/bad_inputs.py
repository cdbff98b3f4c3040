"""Hypothesis strategies of invalid inputs, stage by stage: ``bad_call(stage, kind)`` draws a valid call of a protocol
stage (kind None: leaves it valid) and breaks it in one way of the kind, recording what the protocol prescribes: the
exception class (TypeError: wrong kind of value, ValueError: wrong value), the names the message must contain, and
words of which at least one must state the broken rule (spec/validate.py)."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from hypothesis import event, strategies as st

from vitspec.reference.rope import rotary_angles
from vitspec.reference.weights import random_weights
from vitspec.spec.configs import small_config
from vitspec.spec.protocol import subdict

CONFIG = small_config(2, 32, 2, 40, 16, (1,))  # depth, hidden, heads, intermediate, out, full-attention blocks
D, HEADS, HEAD_DIM = 32, 2, 16
FLOAT_RULES, CU_RULES = ("dtype", "float", "real", "complex"), ("rise", "number of tokens")
REAL_RULES = ("finite", "> 0", "positive", "real number")
BAD_INTS = [(v, TypeError, ("integer",)) for v in (28.0, 1.5, "14", None, True, np.float64(2.0))] + [
    (v, ValueError, ("positive",)) for v in (0, -1, np.int64(-28))
]
BAD_EPS = [(v, ValueError, REAL_RULES) for v in (-1e-6, np.nan, np.inf)] + [("1e-6", TypeError, REAL_RULES)]
BAD_THETA = [(v, ValueError, REAL_RULES) for v in (0.0, -1e4, np.nan, np.inf)] + [("10000", TypeError, REAL_RULES)]


class BadCall(namedtuple("BadCall", "stage kind args error names rules detail")):
    """args: positional, in the protocol's order; names: all must appear in the message; rules: at least one must."""

    def __repr__(self) -> str:  # arrays by dtype and shape (the printed blob or the database replays the values)
        args = [f"{a.dtype}{list(a.shape)}" if isinstance(a, np.ndarray) else repr(a)[:40] for a in self.args]
        return f"BadCall({self.stage}, {self.kind}: {self.detail}; args {', '.join(args)})"


def _base(draw, stage: str) -> list:
    """A valid positional argument list for the stage (segments: 0, up to three cuts, n)."""
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = 4 * draw(st.integers(1, 6))
    x = r.standard_normal((n, D))
    cu = np.array([0, *sorted(draw(st.lists(st.integers(1, n - 1), max_size=3, unique=True))), n], dtype=np.int64)
    if stage == "smart_resize":
        h = draw(st.integers(1, 3000))
        return [h, draw(st.integers(-(-h // 200), min(3000, 200 * h))), 28, 3136, 12845056, "hf"]
    if stage == "resize":
        image = r.integers(0, 256, (draw(st.integers(1, 40)), draw(st.integers(1, 40)), 3), dtype=np.uint8)
        return [image, draw(st.integers(1, 60)), draw(st.integers(1, 60))]
    if stage == "preprocess":
        shapes = [
            (draw(st.integers(1, 3)),) * draw(st.booleans()) + (draw(st.integers(1, 40)), draw(st.integers(1, 40)), 3)
            for _ in range(draw(st.integers(1, 3)))
        ]
        return [[r.integers(0, 256, s, dtype=np.uint8) for s in shapes], 3136, 12845056, 3136, 12845056]
    if stage == "patchify":
        shape = (2 * draw(st.integers(1, 2)), 3, 28 * draw(st.integers(1, 3)), 28 * draw(st.integers(1, 3)))
        return [r.uniform(-1.8, 2.2, shape), 14, 2, 2]
    if stage == "patch_embed":
        return [r.uniform(-1.8, 2.2, (n, 1176)), r.standard_normal((8, 3, 2, 14, 14)) / 34]
    grid = np.array(
        [
            (draw(st.integers(1, 2)), 2 * draw(st.integers(1, 6)), 2 * draw(st.integers(1, 6)))
            for _ in range(draw(st.integers(1, 3)))
        ],
        dtype=np.int64,
    )
    if stage in ("rotary_position_ids", "num_image_tokens", "window_index", "cu_seqlens"):
        return [grid, *{"window_index": [112, 14, 2], "cu_seqlens": []}.get(stage, [2])]
    if stage in ("rotary_cos_sin", "rotary_angles"):
        return [r.integers(0, 60, (n, 2)), draw(st.sampled_from([8, 16, 80])), 10000.0]
    angles = rotary_angles(r.integers(0, 40, (n, 2)), HEAD_DIM)  # the rotary argument: see ROTARY_ARGUMENT
    if stage == "apply_rotary":
        return [r.standard_normal((n, HEADS, HEAD_DIM)), angles]
    if stage == "attention":
        return [r.standard_normal((n, HEADS, HEAD_DIM)) for _ in range(3)] + [cu]
    if stage == "rms_norm":
        return [x, 1 + 0.1 * r.standard_normal(D), 1e-6]
    w = random_weights(CONFIG, draw(st.integers(0, 2**32 - 1)))
    if stage == "mlp":
        return [x, subdict(w, "blocks.0.mlp")]
    if stage == "vision_block":
        return [x, subdict(w, "blocks.0"), cu, angles, HEADS, 1e-6]
    if stage == "attention_module":
        return [x, subdict(w, "blocks.0.attn"), cu, angles, HEADS]
    if stage == "merger":
        return [x, subdict(w, "merger"), 2, 1e-6]
    if stage == "vision_tower":
        return [r.uniform(-1.8, 2.2, (int(np.prod(grid, axis=1).sum()), 1176)), grid, w, dict(CONFIG)]
    raise ValueError(f"no valid call is known for stage {stage!r}")


# --- breakages: (draw, args) -> (error, names, rules, detail), changing the list args in place ------------------
def value_of(slots, values=BAD_INTS):
    """A bad scalar: slots are (index, name) pairs, values (value, error, rules) triples."""

    def breakage(draw, args):
        (i, name), (value, error, rules) = draw(st.sampled_from(slots)), draw(st.sampled_from(values))
        args[i] = value
        return error, (name,), rules, f"{name}={value!r}"

    return breakage


def pick(i: int, names: tuple, rules: tuple, choices):
    """Replace argument i by one of choices: (label, make(draw, old) -> new, error)."""

    def breakage(draw, args):
        label, make, error = draw(st.sampled_from(choices))
        args[i] = make(draw, args[i])
        return error, names, rules, label

    return breakage


def one(i, make, error, names, rules, label):
    return pick(i, names, rules, [(label, make, error)])


def to_dtype(draw, a, dtypes):  # integers: a * 50 rounded; complex: a non-zero imaginary part
    dtype = draw(st.sampled_from(dtypes))
    return (a + 1j * (a != 0)).astype(dtype) if dtype.startswith("complex") else np.round(a * 50).astype(dtype)


def float_array(i: int, name: str, dtypes=("complex128",)):
    """An array of a dtype the stage cannot use where floats belong (complex; integers or bool for weights)."""
    return one(i, lambda d, a: to_dtype(d, a, dtypes), TypeError, (name,), FLOAT_RULES, f"{name} of a non-float dtype")


def reshaped(i: int, name: str, axes=()):
    """An array with one axis too many, one too few, or one of `axes` one longer."""

    def make(draw, a):
        how = draw(st.sampled_from(["extra axis", "missing axis"] + ["longer axis"] * bool(axes)))
        if how != "longer axis":
            return a[None] if how == "extra axis" else a[0]
        axis = draw(st.sampled_from(axes))
        return np.concatenate([a, np.take(a, [0], axis=axis)], axis=axis)

    return one(i, make, ValueError, (name,), ("shape",), f"{name} of another shape")


def grid_breakage(i: int, rows_of=None):
    """grid_thw with an odd h or w, a non-positive entry, a float/bool dtype, or the wrong shape.
    rows_of: index of a pixel_values argument kept at one row per patch of the broken grid."""

    def breakage(draw, args):
        grid, how = np.array(args[i]), draw(st.sampled_from(["odd", "non-positive", "dtype", "shape"]))
        row, error, rules = draw(st.integers(0, len(grid) - 1)), ValueError, ("multiple", "merge_size")
        if how == "odd":
            grid[row, draw(st.integers(1, 2))] += draw(st.sampled_from([-1, 1]))
        elif how == "non-positive":
            grid[row, draw(st.integers(0, 2))], rules = draw(st.integers(-4, 0)), ("positive",)
        elif how == "dtype":
            grid, error, rules = grid.astype(draw(st.sampled_from(["float64", "bool"]))), TypeError, ("integer",)
        else:
            grid, rules = draw(st.sampled_from([grid[:, :2], np.c_[grid, grid], grid[:0], grid[0, :2]])), ("shape",)
        args[i] = grid
        if rows_of is not None and how in ("odd", "non-positive"):
            args[rows_of] = np.resize(args[rows_of], (int(np.prod(np.clip(grid, 0, None), axis=1).sum()), 1176))
        return error, ("grid_thw",), rules, f"grid_thw {how}: {grid.tolist()}"

    return breakage


def params_breakage(i: int, name: str, how: str, strip: str = ""):
    """A weights dict with a key missing, of the wrong shape (input axis one short, vector one longer) or of a
    non-float dtype, or a list instead of a dict (strip: a key prefix the stage drops when it checks a sub-dict)."""

    def breakage(draw, args):
        params = dict(args[i])
        key = draw(st.sampled_from(sorted(params)))
        short, a = key.removeprefix(strip), params[key]
        if how == "missing":
            del params[key]
            result = ValueError, (name, short), ("missing",)
        elif how == "shape":
            params[key] = np.concatenate([a, a[:1]]) if a.ndim == 1 else a[:, :-1]
            result = ValueError, (name, short), ("shape",)
        elif how == "dtype":
            params[key] = to_dtype(draw, a, ("int64", "int8", "bool", "complex128"))
            result = TypeError, (short,), FLOAT_RULES
        else:
            params, result = list(params.values()), (TypeError, (name,), ("dict",))
        args[i] = params
        return (*result, f"{name}: {how} {key}")

    return breakage


def item(make, error, rules, label, names=None):
    """Replace one item of the media list; the message must name media[k] (or `names`)."""

    def breakage(draw, args):
        k = draw(st.integers(0, len(args[0]) - 1))
        args[0] = [make(draw, a) if j == k else a for j, a in enumerate(args[0])]
        return error, names or (f"media[{k}]",), rules, f"media[{k}]: {label} {np.shape(args[0][k])}"

    return breakage


def _wide(draw) -> tuple[int, int]:
    """(height, width) with an aspect ratio above 200, either orientation."""
    short, long = draw(st.integers(1, 3)), draw(st.integers(1, 40))
    return (short, 200 * short + long) if draw(st.booleans()) else (200 * short + long, short)


def _ratio(draw, args):
    args[0], args[1] = _wide(draw)
    return ValueError, ("aspect ratio",), ("200",), f"{args[0]}x{args[1]}"


def _boundaries(draw, cu):
    """cu_seqlens that does not rise from 0 to the token count: the start or the end moved, or a step down."""
    cu, end = np.array(cu), draw(st.sampled_from([0, -1, None]))
    if end is None:
        return np.insert(cu, 1, cu[-1] + 1)
    cu[end] += draw(st.sampled_from([-1, 1, 5]))
    return cu


_channels = lambda d, a: np.repeat(a[..., :1], d(st.sampled_from([1, 2, 4, 5])), axis=-1)  # noqa: E731
_image_dtype = lambda d, a: a.astype(d(st.sampled_from(["float32", "float64", "int16", "bool", "complex64"])))  # noqa
CONTAINERS = [
    ("a bare array", lambda d, it: it[0], TypeError),
    ("an empty list", lambda d, it: [], ValueError),
    ("None", lambda d, it: None, TypeError),
    ("a dict", lambda d, it: {"image": it[0]}, TypeError),
]
CONFIGS = [
    ("depth missing", lambda d, c: {k: v for k, v in c.items() if k != "depth"}, ValueError),
    ("full block beyond depth", lambda d, c: {**c, "fullatt_block_indexes": [2]}, ValueError),
    ("float hidden_size", lambda d, c: {**c, "hidden_size": 32.0}, TypeError),
    ("num_heads not dividing", lambda d, c: {**c, "num_heads": 3}, ValueError),
    ("not a dict", lambda d, c: list(c.items()), TypeError),
]
GRID = {"grid": grid_breakage(0)}
# rotary_angles and rotary_cos_sin take the same arguments (position_ids, head_dim, theta) and break alike
ROTARY_TABLE = {
    "head_dim": value_of([(1, "head_dim")]),
    "theta": value_of([(2, "theta")], BAD_THETA),
    "head_dim mod 4": one(
        1,
        lambda d, _: d(st.sampled_from([2, 6, 10, 78])),
        ValueError,
        ("head_dim",),
        ("multiple of 4",),
        "head_dim not a multiple of 4",
    ),
    "positions shape": reshaped(0, "position_ids", axes=(1,)),
}
# attention_module and vision_block take (x, params, cu_seqlens, rotary, num_heads, ...) and break alike there
BLOCK_ARGUMENTS = {
    "num_heads": value_of([(4, "num_heads")]),
    "heads divide": one(
        4,
        lambda d, _: d(st.sampled_from([3, 5, 7])),
        ValueError,
        ("num_heads",),
        ("divide",),
        "num_heads does not divide hidden",
    ),
    "cu values": one(2, _boundaries, ValueError, ("cu_seqlens",), CU_RULES, "bad boundaries"),
    "rotary shape": reshaped(3, "rotary", (0, 1)),
}
ROTARY_ARGUMENT = {"apply_rotary": 1, "attention_module": 3, "vision_block": 3}  # where the angles go in _base

KINDS: dict[str, dict[str, object]] = {
    "smart_resize": {
        "size": value_of([(0, "height"), (1, "width"), (2, "factor"), (3, "min_pixels"), (4, "max_pixels")]),
        "ratio": _ratio,
        "variant": one(
            5,
            lambda d, _: d(st.sampled_from(["HF", "pil", "", None])),
            ValueError,
            ("variant",),
            ("one of",),
            "unknown variant",
        ),
    },
    "resize": {
        "size": value_of([(1, "height"), (2, "width")]),
        "shape": reshaped(0, "image"),
        "dtype": one(0, _image_dtype, TypeError, ("image",), ("uint8",), "image of another dtype"),
        "channels": one(0, _channels, ValueError, ("image",), ("3", "channels"), "image channels"),
        "empty": one(
            0,
            lambda d, a: a[:0] if d(st.booleans()) else a[:, :0],
            ValueError,
            ("image",),
            ("positive",),
            "empty image",
        ),
    },
    "preprocess": {
        "size": value_of(
            [(1, "image_min_pixels"), (2, "image_max_pixels"), (3, "video_min_pixels"), (4, "video_max_pixels")]
        ),
        "item dtype": item(_image_dtype, TypeError, ("uint8",), "dtype"),
        "item channels": item(_channels, ValueError, ("3", "channels"), "channels"),
        "item ratio": item(
            lambda d, a: np.zeros(_wide(d) + (3,), np.uint8),
            ValueError,
            ("200",),
            "ratio > 200",
            names=("aspect ratio",),
        ),
        "item empty": item(
            lambda d, a: a[..., :0, :, :] if d(st.booleans()) else a[..., :0, :],
            ValueError,
            ("positive", "at least one"),
            "empty",
        ),
        "container": pick(0, ("media",), ("list", "at least one"), CONTAINERS),
    },
    "patchify": {
        "size": value_of([(1, "patch_size"), (2, "temporal_patch_size"), (3, "merge_size")]),
        "non-finite": one(
            0,
            lambda d, a: np.where(
                np.arange(a.size).reshape(a.shape) == d(st.integers(0, a.size - 1)),
                d(st.sampled_from([np.nan, np.inf, -np.inf])),
                a,
            ),
            ValueError,
            ("frames",),
            ("finite",),
            "a NaN or infinite frame value",
        ),
        "dtype": float_array(0, "frames"),
        "shape": reshaped(0, "frames"),
        "frame count": one(
            0,
            lambda d, a: a[: d(st.sampled_from([0, 1, 3]))] if len(a) >= 3 else a[:1],
            ValueError,
            ("frames",),
            ("multiple",),
            "frame count not a multiple of 2",
        ),
        "spatial": one(
            0,
            lambda d, a: a[:, :, : -d(st.integers(1, 27))] if d(st.booleans()) else a[..., :-14],
            ValueError,
            ("frames",),
            ("multiple",),
            "height or width not a multiple of 28",
        ),
    },
    "patch_embed": {
        "row width": one(
            0,
            lambda d, a: np.resize(a, (len(a), d(st.sampled_from([588, 1175, 1177, 2352])))),
            ValueError,
            ("pixel_values",),
            ("1176",),
            "rows not C*T*P*P wide",
        ),
        "weight shape": reshaped(1, "weight", axes=(1, 2, 3, 4)),
        "pixel dtype": float_array(0, "pixel_values"),
        "weight dtype": float_array(1, "weight", ("complex128", "int64", "bool")),
    },
    "rotary_position_ids": {**GRID, "size": value_of([(1, "merge_size")])},
    "window_index": {
        **GRID,
        "size": value_of([(1, "window_size"), (2, "patch_size"), (3, "merge_size")]),
        "window": one(
            1, lambda d, _: d(st.integers(1, 27)), ValueError, ("window_size",), ("merged cell",), "window_size < 28"
        ),
    },
    "cu_seqlens": GRID,
    "num_image_tokens": {**GRID, "size": value_of([(1, "merge_size")])},
    "rotary_angles": {**ROTARY_TABLE},
    "rotary_cos_sin": {**ROTARY_TABLE},
    "apply_rotary": {
        "x shape": reshaped(0, "x"),
        "rotary shape": reshaped(1, "rotary", (0, 1)),
        "x dtype": float_array(0, "x"),
        "rotary dtype": float_array(1, "rotary"),
    },
    "attention_module": {
        **BLOCK_ARGUMENTS,
        "x shape": reshaped(0, "x"),
        "x dtype": float_array(0, "x"),
    },
    "attention": {
        "v shape": one(
            2,
            lambda d, v: np.repeat(v, 2, axis=d(st.integers(1, 2))),
            ValueError,
            ("q", "k", "v"),
            ("same shape",),
            "v with another head count or head_dim",
        ),
        "cu values": one(3, _boundaries, ValueError, ("cu_seqlens",), CU_RULES, "bad boundaries"),
        "cu dtype": one(
            3,
            lambda d, c: c.astype(d(st.sampled_from(["float64", "float32"]))),
            TypeError,
            ("cu_seqlens",),
            ("integers",),
            "float cu_seqlens",
        ),
        "cu shape": one(3, lambda d, c: c[None], ValueError, ("cu_seqlens",), ("shape",), "2-D cu_seqlens"),
        "dtype": float_array(0, "q"),
    },
    "rms_norm": {
        "x shape": reshaped(0, "x"),
        "weight shape": reshaped(1, "weight", (0,)),
        "weight dtype": float_array(1, "weight", ("complex128", "int64", "bool")),
        "eps": value_of([(2, "eps")], BAD_EPS),
    },
    "mlp": {"x dtype": float_array(0, "x")},
    "vision_block": {
        **BLOCK_ARGUMENTS,
        "eps": value_of([(5, "eps")], BAD_EPS),
    },
    "merger": {
        "size": value_of([(2, "merge_size")]),
        "rows": one(0, lambda d, x: x[: -d(st.integers(1, 3))], ValueError, ("x",), ("multiple",), "x rows"),
        "eps": value_of([(3, "eps")], BAD_EPS),
    },
    "vision_tower": {
        "grid": grid_breakage(1, rows_of=0),
        "rows": one(
            0,
            lambda d, pv: pv[: -d(st.integers(1, 4))] if d(st.booleans()) else np.vstack([pv, pv[:3]]),
            ValueError,
            ("pixel_values",),
            ("rows",),
            "rows not one per patch",
        ),
        "row width": one(
            0,
            lambda d, pv: np.resize(pv, (len(pv), d(st.sampled_from([588, 1175, 1177])))),
            ValueError,
            ("pixel_values",),
            ("1176",),
            "rows not C*T*P*P wide",
        ),
        "pixel dtype": float_array(0, "pixel_values"),
        "config": pick(3, ("config",), ("missing", "depth", "integer", "divide", "dict"), CONFIGS),
    },
}
for _stage, _i, _name, _strip in (
    ("mlp", 1, "params", ""),
    ("vision_block", 1, "params", "mlp."),
    ("attention_module", 1, "params", ""),
    ("merger", 1, "params", ""),
    ("vision_tower", 2, "weights", ""),
):
    KINDS[_stage].update(
        {f"{_name} {how}": params_breakage(_i, _name, how, _strip) for how in ("missing", "shape", "dtype", "list")}
    )


@st.composite
def bad_call(draw, stage: str, kind: str | None) -> BadCall:
    """A call of `stage` broken in one way of `kind` (see KINDS); kind None: the valid call, unbroken."""
    args = _base(draw, stage)
    if kind is None:
        return BadCall(stage, None, tuple(args), None, (), (), "valid")
    error, names, rules, detail = KINDS[stage][kind](draw, args)
    event(f"{stage}: {detail}"[:80])
    return BadCall(stage, kind, tuple(args), error, tuple(names), tuple(rules), detail)
