"""Arrays and weights as torch tensors: dtype names, conversion, and a small identity-keyed cache."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


def torch_dtype(name) -> torch.dtype:
    """A model dtype from its name (or a torch.dtype): float32, bfloat16, float16 or float64."""
    if isinstance(name, torch.dtype) and name in DTYPES.values():
        return name
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {name!r}")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    """The name of a model dtype."""
    return next(k for k, v in DTYPES.items() if v == dtype)


def rope_dtype(dtype: torch.dtype) -> torch.dtype:
    """RoPE and norm statistics run in float32 at least (float64 for a float64 model), never in half precision."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def to_tensor(x, dtype: torch.dtype, device) -> torch.Tensor:
    """A NumPy array or torch tensor as a tensor of dtype on device (no copy when it already is one)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=dtype)
    arr = np.ascontiguousarray(np.asarray(x))
    return torch.from_numpy(arr).to(dtype=dtype).to(device)


def host_array(x) -> np.ndarray:
    """A tensor or array-like as a NumPy array on the host (index data such as cu_seqlens)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return x


class IdentityCache:
    """An LRU of values derived from weights dicts, keyed by the dict's identity plus extra key parts."""

    # The dict is held so its id cannot be reused; the ids of its values are compared on every hit, so
    # replacing an entry invalidates the cached value (editing an array in place does not).

    def __init__(self, maxsize: int = 4):
        self.maxsize = maxsize
        self.entries: OrderedDict = OrderedDict()

    def get(self, obj: dict, extra: tuple, build):
        """The cached value for (obj, extra), or build() stored as it."""
        key = (id(obj),) + extra
        stamp = tuple(id(v) for v in obj.values())
        hit = self.entries.get(key)
        if hit is not None and hit[0] is obj and hit[1] == stamp:
            self.entries.move_to_end(key)
            return hit[2]
        value = build()
        self.entries[key] = (obj, stamp, value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.maxsize:
            self.entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self.entries.clear()
