"""`vitspec verify` run in a child from the checkout root, and its report's target rows read back as counts, for
the tests that run an adapter or an example target as a user would."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vitspec.tests import subproc
from vitspec.verify import COLUMNS

ROOT = Path(__file__).resolve().parent.parent


def verify(target: str, keyword: str, extra_path=()) -> subprocess.CompletedProcess:
    """vitspec verify --target `target` -k `keyword` at 5 examples, in a child run from the checkout root."""
    args = subproc.python("-m", "vitspec.cli", "verify", "--target", target, "--max-examples", "5", "-k", keyword)
    return subproc.run(args, cwd_=ROOT, env_=subproc.env(extra_path), timeout=600)


def rows(stdout: str) -> dict[str, dict]:
    """The report's target rows: {stage: {column: count, "mark": text after the counts}}. The target group comes
    first in the report, so a stage's first row is its target row."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if (
            line.startswith("  ")
            and len(parts) > len(COLUMNS)
            and all(p.isdigit() for p in parts[1 : len(COLUMNS) + 1])
        ):
            out.setdefault(
                parts[0],
                dict(zip(COLUMNS, map(int, parts[1 : len(COLUMNS) + 1])), mark=" ".join(parts[len(COLUMNS) + 1 :])),
            )
    return out
