"""Which tests check each invariant of the catalogue (vitspec.spec.invariants), read from the suite's files.

A check function whose docstring begins with invariant ids ("WIN-PERM, WIN-TILES: ...") checks those
invariants, and every test that calls it (or names an id in its own docstring) is listed; tests marked
``negative_control`` are its negative controls. The files are parsed, never imported or run.
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path

import vitspec.tests as _suite
from vitspec.spec.invariants import INVARIANTS, Invariant

TESTS_DIR = Path(_suite.__file__).resolve().parent
_ID = re.compile(r"\b[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*\b")


def _ids_in(doc: str | None, known: set[str]) -> set[str]:
    """The catalogue ids named before the first colon of a docstring."""
    head = (doc or "").split(":", 1)[0]
    return {i for i in _ID.findall(head) if i in known}


def checking_tests(tests_dir: Path = TESTS_DIR) -> dict[str, dict[str, list[str]]]:
    """id -> {"tests": [...], "negative": [...]} found by reading the test files (no import, no run)."""
    known = {inv.id for inv in INVARIANTS}
    found = {i: {"tests": set(), "negative": set()} for i in known}
    if not tests_dir.is_dir():
        return {i: {"tests": [], "negative": []} for i in known}
    for path in sorted(tests_dir.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        checks = {f.name: _ids_in(ast.get_docstring(f), known) for f in funcs if not f.name.startswith("test_")}
        for f in (f for f in funcs if f.name.startswith("test_")):
            names = {n.id for n in ast.walk(f) if isinstance(n, ast.Name)}
            ids = set(_ids_in(ast.get_docstring(f), known))
            for name in names & set(checks):
                ids |= checks[name]
            negative = any("negative_control" in ast.unparse(d) for d in f.decorator_list)
            for i in ids:
                found[i]["negative" if negative else "tests"].add(f"{path.name}::{f.name}")
    return {i: {k: sorted(v) for k, v in d.items()} for i, d in found.items()}


def with_tests() -> tuple[Invariant, ...]:
    """The catalogue with each invariant's tests and negative controls filled in from the suite."""
    found = checking_tests()
    return tuple(
        replace(inv, tests=tuple(found[inv.id]["tests"]), negative=tuple(found[inv.id]["negative"]))
        for inv in INVARIANTS
    )
