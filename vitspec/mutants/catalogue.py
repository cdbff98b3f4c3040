"""The catalogue of planted-bug mutants: impl.TARGET with ONE realistic bug (SPEC-NOTES §7) planted.

The mutants live by stage group in vitspec/mutants/preprocessing.py, vitspec/mutants/rope_windows.py and
vitspec/mutants/tower.py; vitspec/mutants/plant.py plants them. Each module attribute named after a mutant is that
mutant as a target:

    pytest --target vitspec.mutants.catalogue:window_side_5_cells    # the suite against one mutant
    vitspec mutants                                              # every mutant; the suite must kill all

A mutant may fix its compute dtype (low-precision bugs); the suite then judges it against its same-dtype
baseline, and ``vitspec mutants`` runs impl unmutated in that dtype as the control.
"""
from __future__ import annotations

from vitspec.mutants.plant import Mutant, MutantTarget


def _catalogue() -> tuple[Mutant, ...]:
    """Every stage group's mutants, names unique (they are --target attribute names)."""
    from vitspec.mutants import preprocessing, rope_windows, tower
    found = preprocessing.MUTANTS + rope_windows.MUTANTS + tower.MUTANTS
    names = [m.name for m in found]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"mutant names must be unique, repeated: {duplicated}")
    return found


CATALOGUE: tuple[Mutant, ...] = _catalogue()
BY_NAME: dict[str, Mutant] = {m.name: m for m in CATALOGUE}


def mutant(name: str) -> Mutant:
    """The catalogue entry with this name."""
    if name not in BY_NAME:
        raise ValueError(f"mutant must be one of {sorted(BY_NAME)}, got {name!r}")
    return BY_NAME[name]


def __getattr__(name: str) -> MutantTarget:
    """``vitspec.mutants.catalogue:<name>`` is that mutant as a target (what --target loads)."""
    if name in BY_NAME:
        return MutantTarget(BY_NAME[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
