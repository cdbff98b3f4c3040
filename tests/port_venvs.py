"""The venvs `vitspec ports` builds (one per port x released version, under $VITSPEC_PORTS_CACHE, default
~/.cache/vitspec/ports), for the tests that run an adapter in a release other than the installed one."""

from __future__ import annotations

import json
import os
import site
import sys
from pathlib import Path

import pytest

from vitspec.tests import subproc
from vitspec.tests.plugin import ORACLE_MISSING
from vitspec.tests.report import ROOT

CACHE = Path(os.environ.get("VITSPEC_PORTS_CACHE", "~/.cache/vitspec/ports")).expanduser()
CHILDREN = Path(__file__).resolve().parent / "children"


def child_env(extra_path=()) -> dict:
    """The parent's environment and path, less its site-packages: those would shadow the venv's port (the venv sees
    them anyway, after its own, through --system-site-packages)."""
    site_dirs = {*site.getsitepackages(), site.getusersitepackages()}
    keep = [str(p) for p in extra_path] + [p for p in sys.path if p and p not in site_dirs]
    return subproc.env(PYTHONPATH=os.pathsep.join(dict.fromkeys(keep)))


def venv_python(port: str, package: str, version: str) -> Path | None:
    """The interpreter of the venv built for `package` `version`, or None when it is not built."""
    venv = CACHE / f"{port}-{version}"
    python = venv / "bin" / "python"
    return python if (venv / ".vitspec-installed").is_file() and python.exists() else None


def missing(port: str, package: str, version: str):
    """A loud, counted skip: the release's venv is not built."""
    pytest.skip(
        f"{ORACLE_MISSING} {package} {version} (its venv {CACHE / f'{port}-{version}'} is not built: "
        f"vitspec ports --port {port} --version {version})"
    )


def run_child(python: Path, child: str, version: str, timeout: int = 600) -> dict:
    """tests/children/`child` run by `python`: its last line, JSON, whose 'version' must be `version`."""
    done = subproc.run([python, str(CHILDREN / child)], cwd_=ROOT, env_=child_env(), timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["version"] == version, got
    return got
