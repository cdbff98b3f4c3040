"""`vitspec ports`: the conformance matrix of real ports across their released versions (docs/PORTS.md).

    vitspec ports [--port mlx_vlm] [--version 0.3.9] [--dtype float32] [--cache DIR] [--profile ci] [--render]

One virtual environment per port × released version (under the cache directory, default
~/.cache/vitspec/ports, option --cache or $VITSPEC_PORTS_CACHE); in it, ``vitspec verify --target ...
--junitxml ...`` per target × dtype; one results file per run, checked in; docs/PORTS.md generated from all
results files. ``--render`` only regenerates docs/PORTS.md from the results already there.

The layout every port follows
=============================

    ports/<port>.toml                           one per port (the file's stem is the port's key), format below
    ports/<port>.sh                             optional install script, for ports pip alone cannot install
    ports/results/<name>-<version>-<dtype>.json one per target × released version × dtype (format below), checked in
    docs/PORTS.md                               generated from ports/results/*.json and the tomls' [[explain]]
    docs/repro/<port>_<bug>.py                  a reproduction, runnable with the port alone, for each bug of a
                                                current release that the matrix shows

``ports/<port>.toml``::

    title = "mlx-vlm"                        # the name PORTS.md prints
    package = "mlx-vlm"                      # the PyPI distribution whose released versions are the rows
    versions = ["0.1.12", "0.3.9"]           # the released versions to cover, oldest first
    dtypes = ["float32", "bfloat16"]         # one verify run each: float32 and the port's native low precision
    install = ["mlx-cpu==0.32.4", "mlx==0.32.4", "mlx-vlm=={version}"]   # pip requirements, {version} filled in
    pip_options = ["--no-deps"]              # optional: options for that pip install
    script = "vllm.sh"                       # optional: run after `install` as  bash ports/<script> PYTHON VERSION
                                             # (PYTHON is the venv's interpreter; exit status != 0: install failed)
    timeout_s = 1200                         # optional: limit per verify run (default 1800)

    [[target]]                               # one or more targets per port
    name = "mlx_vlm"                         # results/<name>-<version>-<dtype>.json; [a-z0-9_] only
    target = "vitspec.adapters.mlx_vlm:TARGET"
    model = "Qwen2.5-VL"

    [[explain]]                              # every failing (or not run) cell of the matrix is explained here
    name = "mlx_vlm"                         # the target's name
    versions = "<0.1.15"                     # a PEP 440 specifier ("" = every version)
    stage = "rotary_position_ids"            # or "*" for the whole run (install failed, ...)
    kind = "upstream bug"                    # "upstream bug" (fixed in a later release: say which) | "current bug"
                                             # (give docs/repro/...) | "cannot run here" | "vitspec"
    text = "mx.repeat where torch's .repeat tiles: video frames repeat each position; fixed in 0.1.15"

The venv is made with ``--system-site-packages`` (torch, numpy, pytest, hypothesis and vitspec itself come
from the environment that runs ``vitspec ports``; what the toml installs shadows them), so a venv costs only the
port's own packages. A port whose install fails gets a results file with status "install failed" and the
pip/script output's last lines: it is reported and counted, never silently left out.

Results file (``"format": 1``), one JSON object::

    {"format": 1,
     "port": "mlx_vlm", "title": "mlx-vlm", "name": "mlx_vlm", "model": "Qwen2.5-VL",
     "target": "vitspec.adapters.mlx_vlm:TARGET", "version": "0.3.9", "dtype": "float32",
     "status": "ran",            # "ran" | "install failed" | "load failed" | "timed out"
     "reason": "",               # why it did not run (the error's last lines), "" when it ran
     "exit_code": 0,             # vitspec verify's exit status (0 pass, 1 a check failed), null when not run
     "profile": "ci", "date": "2026-11-28T21:30:00Z", "vitspec_commit": "3b347e8",
     "machine": "Linux x86_64, 2 CPUs", "python": "3.11.7",
     "installed": {"mlx-vlm": "0.3.9", "mlx": "0.32.4"},     # the versions the venv really holds
     "install_seconds": 41.2, "verify_seconds": 95.0,
     "totals": {"checks": 120, "passed": 80, "failed": 2, "not covered": 38, "skipped": 0},
     "stages": {"window_index": {"status": "recorded difference",  # "pass" | "fail" | "not covered" |
                                                                    # "recorded difference" (passed, with a difference)
                                 "checks": 4, "passed": 4, "failed": 0, "not covered": 0, "skipped": 0,
                                 "exercised": 4,                    # checks that called the target's method
                                 "differences": ["empty windows kept: ..."],
                                 "reasons": ["target does not validate its inputs"],   # not-covered reasons
                                 "failures": [{"test": "tests/test_rope.py::test_x", "message": "first lines"}]},
                ...}}

A stage is "fail" when any target check of it failed, "not covered" when none ran (the reasons say why),
"recorded difference" when it passed and a check recorded a difference, "pass" otherwise. Only target checks
(docs/ARCHITECTURE.md, "Runs that check only the target") count.
"""
from __future__ import annotations

RESULTS_FORMAT = 1
STATUSES = ("ran", "install failed", "load failed", "timed out")
STAGE_STATUSES = ("pass", "fail", "not covered", "recorded difference")
EXPLAIN_KINDS = ("upstream bug", "current bug", "cannot run here", "vitspec")
