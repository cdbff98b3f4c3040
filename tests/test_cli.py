"""The `vitspec` command line (vitspec/cli.py): explain, configs, errors, help, and the installed entry points.

Expected values are derived by hand from the spec documents (seed §3, SPEC-NOTES §1.1, §3, §4, §5).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vitspec import cli
from vitspec.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of vitspec.cli.main; argparse's --help exit is turned into its code."""
    try:
        rc = main(list(argv))
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_explain_224_json(capsys):
    rc, out, err = run_cli(capsys, "explain", "224x224", "--json")
    assert rc == 0 and err == ""
    d = json.loads(out)
    # seed §3: 224 is 8·28, 16×16 patches, 2×2 windows of 8×8 = 64 patches, 256 / 4 = 64 tokens
    assert (d["resized_height"], d["resized_width"]) == (224, 224)
    assert d["grid_thw"] == [1, 16, 16]
    assert d["num_patches"] == 256
    assert d["num_windows"] == 4 and d["window_sizes"] == [64, 64, 64, 64]
    assert d["num_tokens"] == 64


def test_explain_1080x1920(capsys):
    rc, out, err = run_cli(capsys, "explain", "1080x1920")
    assert rc == 0 and err == ""
    assert "1092×1932" in out  # SPEC-NOTES §1.1 item 6
    rc, out, _ = run_cli(capsys, "explain", "1080x1920", "--json")
    d = json.loads(out)
    assert (d["resized_height"], d["resized_width"]) == (1092, 1932)
    assert d["grid_thw"] == [1, 78, 138] and d["num_tokens"] == 2691  # SPEC-NOTES §4
    # merged grid 39×69 → ceil(39/4)·ceil(69/4) = 10·18 windows;
    # the last window row is 3 cells tall, the last window column 1 cell wide
    assert d["num_windows"] == 180
    assert sorted(set(d["window_sizes"])) == [12, 16, 48, 64]
    assert sum(d["window_sizes"]) == 78 * 138


def test_explain_hf_default_budget_and_video(capsys):
    _, out, _ = run_cli(capsys, "explain", "1080x1920", "--max-pixels", "1003520", "--json")
    assert json.loads(out)["resized_height"] == 728 and json.loads(out)["resized_width"] == 1316  # §1.1 item 6
    _, out, _ = run_cli(capsys, "explain", "224x336", "--frames", "5", "--json")
    d = json.loads(out)
    # §1.2: 5 frames pad to 6, grid_t = 3; 16×24 patches per frame; 3·16·24/4 = 288 tokens; one segment per frame
    assert d["grid_thw"] == [3, 16, 24] and d["num_tokens"] == 288
    assert d["full_attention_segments"] == [384, 384, 384]
    assert d["num_windows"] == 3 * 2 * 3  # per frame: merged 8×12 → 2×3 windows


def test_explain_qvu_variant(capsys):
    # SPEC-NOTES §1.1 item 4: (1, 200) gives (28, 812) in HF and (28, 196) in qwen-vl-utils
    for variant, expected in (("hf", (28, 812)), ("qvu", (28, 196))):
        _, out, _ = run_cli(capsys, "explain", "1x200", "--variant", variant, "--json")
        d = json.loads(out)
        assert (d["resized_height"], d["resized_width"]) == expected


# bad arguments of every verb: tests/test_cli_arguments.py (one table)


def test_ratio_200_exactly_is_allowed(capsys):
    rc, _, err = run_cli(capsys, "explain", "1x200")
    assert rc == 0 and err == ""


def test_configs_json_rows_and_discrepancies(capsys):
    rc, out, err = run_cli(capsys, "configs", "--json")
    assert rc == 0 and err == ""
    rows = json.loads(out)
    fields = [
        "vit_hidden_size",
        "vit_layers",
        "vit_heads",
        "vit_intermediate_size",
        "patch_size",
        "window_size",
        "fullatt_block_indexes",
        "merger_in_channels",
        "merger_out_channels",
        "llm_hidden_size",
        "llm_layers",
        "llm_kv_heads",
        "llm_head_size",
        "llm_intermediate_size",
        "embedding_tying",
        "vocab_size",
        "trained_tokens",
    ]  # the document's table, seed §2
    assert sorted((r["field"], r["model"]) for r in rows) == sorted((f, m) for f in fields for m in ("3B", "7B", "72B"))
    # SPEC-NOTES §5: the values where the released config.json differs from the document
    expected = {
        ("vit_intermediate_size", "3B"): (3456, 3420),
        ("vit_intermediate_size", "7B"): (3456, 3420),
        ("llm_intermediate_size", "3B"): (4864, 11008),
        ("vocab_size", "3B"): (151646, 151936),
        ("vocab_size", "7B"): (151646, 152064),
        ("vocab_size", "72B"): (151646, 152064),
    }
    flagged = {(r["field"], r["model"]): (r["document"], r["released"]) for r in rows if r["discrepancy"]}
    assert flagged == expected
    by_key = {(r["field"], r["model"]): r for r in rows}
    assert by_key[("vit_intermediate_size", "72B")]["released"] == 3456  # 72B matches the document
    assert by_key[("llm_intermediate_size", "72B")]["released"] == 29568
    assert by_key[("llm_kv_heads", "7B")]["released"] == 4 and by_key[("embedding_tying", "3B")]["released"] is True
    assert all(not by_key[("trained_tokens", m)]["in_config"] for m in ("3B", "7B", "72B"))


def test_configs_text_marks_discrepancies(capsys):
    rc, out, _ = run_cli(capsys, "configs")
    assert rc == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(("!", "-"))}
    assert lines["vit_intermediate_size"].count("!") == 2
    assert lines["llm_intermediate_size"].count("!") == 1
    assert lines["vocab_size"].count("!") == 3
    assert lines["window_size"].count("!") == 0


@pytest.mark.parametrize(
    "argv,mentions",
    [
        ([], ["explain", "configs", "verify", "bench", "mutants", "Exit codes"]),
        (["explain"], ["size", "--min-pixels", "--max-pixels", "--frames", "--variant", "--json", "--plot", "--image"]),
        (["configs"], ["--json"]),
    ],
)
def test_help_exits_0_and_mentions_every_option(capsys, argv, mentions):
    rc, out, err = run_cli(capsys, *argv, "--help")
    assert rc == 0, err
    for word in mentions:
        assert word in out, word


@pytest.mark.parametrize(
    "verb,module", [("verify", "vitspec.verify"), ("bench", "vitspec.bench"), ("mutants", "vitspec.mutants.gate")]
)
def test_dispatched_verbs_help_exits_0(capsys, verb, module):
    importlib.import_module(module)  # a missing module of the project is a failure, never a skip
    rc, out, err = run_cli(capsys, verb, "--help")
    assert rc == 0, err
    assert f"usage: vitspec {verb}" in out or "usage:" in out


def _entry_points() -> list[list[str]]:
    """`python -m vitspec.cli` always; the installed `vitspec` console script when it is on PATH or beside python."""
    commands = [[sys.executable, "-m", "vitspec.cli"]]
    search = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    script = shutil.which("vitspec", path=search)
    if script:
        commands.append([script])
    return commands


def test_entry_points_as_subprocess():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    for command in _entry_points():
        done = subprocess.run(
            command + ["explain", "224x224", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (command, done.stderr)
        d = json.loads(done.stdout)
        assert d["grid_thw"] == [1, 16, 16] and d["num_tokens"] == 64
        bad = subprocess.run(
            command + ["explain", "1x201"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, (command, bad.stderr)


def test_json_means_the_same_on_every_verb(tmp_path):
    """--json is a flag that prints JSON to stdout; --output FILE writes the same JSON to a file (every verb)."""
    from vitspec import bench
    from vitspec.mutants import gate

    parsers = {"bench": bench.parser().parse_args, "mutants": gate.parse_args}
    sub = cli.build_parser()._subparsers._group_actions[0].choices
    for verb in ("explain", "configs"):
        parsers[verb] = lambda argv, verb=verb: sub[verb].parse_args((["224x224"] if verb == "explain" else []) + argv)
    for verb, parse in parsers.items():
        assert parse(["--json"]).json is True, verb
        assert parse([]).json is False, verb
        assert parse(["--output", "x.json"]).output == "x.json", verb


def test_explain_and_configs_output_file(capsys, tmp_path):
    out = tmp_path / "explain.json"
    rc, text, err = run_cli(capsys, "explain", "224x224", "--output", str(out))
    assert rc == 0 and err == "" and "grid_thw" in text and not text.lstrip().startswith("{")
    assert json.loads(out.read_text())["num_tokens"] == 64
    rc, printed, _ = run_cli(capsys, "explain", "224x224", "--json", "--output", str(out))
    assert json.loads(printed) == json.loads(out.read_text())
    rows = tmp_path / "configs.json"
    rc, printed, _ = run_cli(capsys, "configs", "--json", "--output", str(rows))
    assert rc == 0 and json.loads(printed) == json.loads(rows.read_text()) == cli.configs_rows()


def test_verify_passes_options_after_double_dash_to_pytest(capsys):
    """`vitspec verify -k EXPR -- --hypothesis-show-statistics -x`: pytest gets the options (its statistics print)."""
    from vitspec import verify

    assert verify.uses_workers(["-n", "2"]) and verify.uses_workers(["-n2"]) and verify.uses_workers(["-nauto"])
    assert not verify.uses_workers(["-x", "--lf"]) and not verify.uses_workers(["-n", "0"])
    rc, out, err = run_cli(capsys, "verify", "-k", "test_tokens and prompt", "--", "-x", "--hypothesis-show-statistics")
    assert rc == 0, out[-3000:] + err[-2000:]
    assert "Hypothesis Statistics" in out and "passing examples" in out, out[-2000:]
    assert "PASS:" in out
    # pytest prints its own progress then: verify's per-file lines would land inside pytest's progress lines
    assert "tests/test_tokens.py " not in err and "passed" not in err.split("vitspec verify:", 1)[-1], err[-2000:]


def test_bench_shows_a_progress_line_per_row(capsys):
    """bench at depth 1 on one 28x28 image: one progress line per measured row on stderr, JSON rows on stdout."""
    pytest.importorskip(
        "transformers",
        reason="UPSTREAM ORACLE MISSING: bench compares against HF transformers (the upstream extra)",
    )
    rc, out, err = run_cli(
        capsys, "bench", "--depth", "1", "--sizes", "28x28", "--repeats", "1", "--no-preprocess", "--json"
    )
    assert rc == 0, err[-2000:]
    rows = json.loads(out)
    assert [(r["stage"], r["size"], r["depth"]) for r in rows] == [("tower", "28x28", 1)]
    done = [line for line in err.splitlines() if line.startswith("[bench] tower 28x28: impl")]
    assert len(done) == len(rows), err


def test_ci_runs_exactly_the_readme_test_command():
    """.ci/run's command is the README's second command, character for character (the set-up contract)."""
    root = Path(__file__).resolve().parents[1]
    readme, ci = root / "README.md", root / ".ci" / "run"
    if not (readme.exists() and ci.exists()):
        pytest.skip("README.md and .ci/run are in the checkout only (not installed)")
    block = readme.read_text().split("## The two commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("  #", 1)[0].strip() for line in block.strip().splitlines()]
    assert len(commands) == 2, commands
    ci_lines = [ln for ln in ci.read_text().splitlines() if ln.strip() and not ln.startswith(("#", "set ", "cd "))]
    assert ci_lines == [commands[1]], (ci_lines, commands[1])
