"""Child processes of the suite see what the parent sees: its ``sys.path`` (as ``PYTHONPATH``) and its working
directory, so a target importable where the user stands (a module in the current directory, a folder on
``PYTHONPATH``, an editable or a wheel install) is importable in the child too. Every test that starts a Python
child process goes through ``env()`` / ``cwd()`` / ``run()`` / ``popen()`` here.
"""

from __future__ import annotations

import os
import subprocess
import sys

RUNNING_TEST = ("PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


def python_path(extra=()) -> str:
    """PYTHONPATH for a child: `extra` first, then this interpreter's sys.path (the script directory's '' as the
    working directory, which the child starts in)."""
    parts = [str(p) for p in extra] + [p or os.getcwd() for p in sys.path]
    return os.pathsep.join(dict.fromkeys(parts))


def env(extra_path=(), **updates) -> dict:
    """os.environ with PYTHONPATH = the parent's sys.path (plus `extra_path` first) and `updates` applied; a None
    value removes a variable. The variables pytest and xdist set for the running test are dropped (a child is a
    run of its own)."""
    out = {k: v for k, v in os.environ.items() if k not in RUNNING_TEST}
    out["PYTHONPATH"] = python_path(extra_path)
    for k, v in updates.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = str(v)
    return out


def cwd() -> str:
    """The parent's working directory (where the user ran pytest or vitspec verify)."""
    return os.getcwd()


def run(argv, *, cwd_=None, env_=None, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run with the parent's path and working directory unless given; text output captured."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([str(a) for a in argv], cwd=cwd_ or cwd(), env=env_ or env(), **kwargs)


def popen(argv, *, cwd_=None, env_=None, **kwargs) -> subprocess.Popen:
    """subprocess.Popen with the parent's path and working directory unless given; text pipes."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("text", True)
    return subprocess.Popen([str(a) for a in argv], cwd=cwd_ or cwd(), env=env_ or env(), **kwargs)


def python(*args) -> list[str]:
    """argv of this interpreter with `args`."""
    return [sys.executable, *map(str, args)]
