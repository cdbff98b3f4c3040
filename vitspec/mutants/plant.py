"""Planting one bug in impl: the Mutant record, its plants (Swap, Edit) and the MutantTarget that runs it.

A mutant's stage methods are impl's TorchTarget methods run while one change is planted in impl's modules:
a function replaced by a wrapper of the original (``Swap``), a constant changed, or a few characters of one
function's source edited and recompiled (``Edit``). A replaced impl function is rebound everywhere impl
holds it (module globals, TorchTarget's stage closures, the block's element-wise table), so a bug planted
in a shared helper shows in every stage that uses it, as it would in a real port. impl's per-grid and
per-weights caches are cleared around every planted call.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest import mock

from vitspec.spec.protocol import STAGE_NAMES

PLANTED_METHODS = frozenset(STAGE_NAMES) | {"fixed_grid_tower"}
IMPL_MODULES = ("vitspec.impl.target", "vitspec.impl.pixels")  # with what they import: every impl module a stage runs


class PlantError(RuntimeError):
    """A mutant cannot be planted: its site is gone from impl (the catalogue must follow the code)."""


def resolve(path: str) -> tuple[Any, str]:
    """('vitspec.impl.rope.position_ids') -> (the module vitspec.impl.rope, 'position_ids'), checking the attribute exists."""
    module_name, _, attr = path.rpartition(".")
    module = importlib.import_module(module_name)
    if not hasattr(module, attr):
        raise PlantError(f"{path}: module {module_name} has no attribute {attr!r}")
    return module, attr


@dataclass(frozen=True)
class Swap:
    """Replace one impl attribute by build(original): a wrapper, a new function or a changed constant."""
    path: str
    build: Callable[[Any], Any]
    everywhere: bool = True  # rebind an impl-defined function wherever impl holds it

    def replacement(self, original):
        """The value planted in place of the original."""
        return self.build(original)


@dataclass(frozen=True)
class Edit:
    """Recompile one impl function with each (old, new) text replaced once in its source."""
    path: str
    changes: tuple[tuple[str, str], ...]
    everywhere: bool = True

    def replacement(self, original):
        """The original function recompiled from its edited source, in its own module's globals."""
        source = textwrap.dedent(inspect.getsource(original))
        for old, new in self.changes:
            if source.count(old) != 1:
                raise PlantError(f"{self.path}: the text {old!r} occurs {source.count(old)} times, expected once")
            source = source.replace(old, new)
        _, attr = resolve(self.path)
        local: dict = {}
        # globals: the live module that defines it (impl's own)
        exec(compile(source, f"<mutant of {self.path}>", "exec"), original.__globals__, local)
        return local[original.__name__]


def edit(path: str, old: str, new: str, *more: tuple[str, str]) -> Edit:
    """An Edit of one function: old -> new (and any further (old, new) pairs)."""
    return Edit(path, ((old, new),) + tuple(more))


def _impl_modules():
    """Every loaded impl module (the target's stages import the rest lazily, so load those first)."""
    for name in IMPL_MODULES:
        importlib.import_module(name)
    return [sys.modules[n] for n in sorted(sys.modules) if n == "vitspec.impl" or n.startswith("vitspec.impl.")]


@contextlib.contextmanager
def _cell_set(cell, value):
    """Temporarily set a closure cell (TorchTarget's stage methods close over impl's functions)."""
    old = cell.cell_contents
    cell.cell_contents = value
    try:
        yield
    finally:
        cell.cell_contents = old


def rebind(stack: contextlib.ExitStack, module, attr: str, new, everywhere: bool) -> None:
    """Bind module.attr to new; for an impl function, also every other place impl holds the original."""
    original = getattr(module, attr)
    stack.enter_context(mock.patch.object(module, attr, new))
    shared = ("vitspec.impl", "vitspec.spec")  # impl's functions and the input rules impl shares from spec
    if not (everywhere and callable(original) and getattr(original, "__module__", "").startswith(shared)):
        return
    from vitspec.impl.block import Elementwise
    from vitspec.impl.target import TorchTarget
    for mod in _impl_modules():
        for name, value in list(vars(mod).items()):
            if value is original and (mod, name) != (module, attr):
                stack.enter_context(mock.patch.object(mod, name, new))
            elif isinstance(value, Elementwise):
                fields = {f.name: new for f in dataclasses.fields(value) if getattr(value, f.name) is original}
                if fields:
                    stack.enter_context(mock.patch.object(mod, name, dataclasses.replace(value, **fields)))
    for method in vars(TorchTarget).values():
        for cell in getattr(method, "__closure__", None) or ():
            if cell.cell_contents is original:
                stack.enter_context(_cell_set(cell, new))


def clear_impl_caches() -> None:
    """Forget every value impl cached (lru_cache'd functions, identity caches): it may hold a planted bug's output."""
    from vitspec.impl.weights import IdentityCache
    for mod in _impl_modules():
        for value in list(vars(mod).values()):
            if isinstance(value, IdentityCache) or (callable(getattr(value, "cache_clear", None))
                                                    and getattr(value, "__module__", "").startswith("vitspec.impl")):
                value.clear() if isinstance(value, IdentityCache) else value.cache_clear()


@dataclass(frozen=True)
class Mutant:
    name: str
    stages: tuple[str, ...]  # the protocol stages whose output the bug changes
    bug_class: str  # the SPEC-NOTES §7 class
    description: str
    plants: tuple  # Swap / Edit: together they are one bug
    dtype: str | None = None  # a fixed compute dtype (low-precision bugs), else the target's
    # why the bug cannot show in bfloat16/float16 (then it runs at float32 only); empty: it runs at every dtype
    below_low_precision: str = ""

    def __post_init__(self):
        """A mutant names at least one protocol stage."""
        unknown = [s for s in self.stages if s not in STAGE_NAMES]
        if unknown or not self.stages:
            raise ValueError(f"mutant {self.name}: stages must be protocol stage names, got {unknown or '()'}")

    @contextlib.contextmanager
    def planted(self):
        """The bug in place for the duration of the block; impl restored (and its caches cleared) after."""
        clear_impl_caches()
        with contextlib.ExitStack() as stack:
            stack.callback(clear_impl_caches)
            for plant in self.plants:
                module, attr = resolve(plant.path)
                rebind(stack, module, attr, plant.replacement(getattr(module, attr)), plant.everywhere)
            yield


class MutantTarget:
    """impl's TorchTarget whose stage methods run with one mutant's bug planted."""

    def __init__(self, mutant: Mutant, base=None):
        """The mutant planted in `base` (default: a fresh TorchTarget in the mutant's dtype or float32)."""
        from vitspec.impl.target import TorchTarget
        self.mutant = mutant
        self.base = base if base is not None else TorchTarget(dtype=mutant.dtype or "float32")
        self.name = mutant.name

    def __repr__(self) -> str:
        """The mutant's name and the target it was planted in."""
        return f"MutantTarget({self.mutant.name!r}, {self.base!r})"

    def with_options(self, device=None, dtype=None, compile=None) -> MutantTarget:
        """A copy on another device; a mutant with a fixed dtype keeps it."""
        return MutantTarget(self.mutant, self.base.with_options(device=device, dtype=self.mutant.dtype or dtype,
                                                                compile=compile))

    def __getattr__(self, attr):
        """Stage methods of the base target run with the bug planted; other attributes are the base's."""
        if attr in ("base", "mutant") or attr.startswith("__"):
            raise AttributeError(attr)
        value = getattr(self.base, attr)
        if attr not in PLANTED_METHODS or not callable(value):
            return value

        def stage_with_bug(*args, **kwargs):
            with self.mutant.planted():
                return value(*args, **kwargs)
        stage_with_bug.__name__ = attr
        return stage_with_bug


