"""Every bad argument of every verb is one line on stderr and exit 2, never a traceback (vitspec/cli.py and the
verbs it dispatches: verify, bench, mutants; the module entry points specmd and gpu_check).

One table, BAD, of (entry point, argv, a word the error line must contain); a test checks that every verb the
command line has today appears in it, so a new verb cannot ship without rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vitspec import cli

NO_DIR = str(Path(__file__).resolve().parent / "no-such-folder" / "out.json")
CUDA = "cuda:99" if torch.cuda.is_available() else "cuda"  # a device this machine cannot run

BAD = [
    # the command line itself
    ("vitspec", ["no-such-verb"], "invalid choice"),
    ("vitspec", ["--no-such-option"], "unrecognized"),
    # explain
    ("vitspec", ["explain"], "size"),
    ("vitspec", ["explain", "0x5"], "positive"),
    ("vitspec", ["explain", "abc"], "HEIGHTxWIDTH"),
    ("vitspec", ["explain", "1x201"], "200"),  # aspect ratio 201 > 200 (SPEC-NOTES §1.1 item 1)
    ("vitspec", ["explain", "224x224", "--max-pixels", "0"], "--max-pixels"),
    ("vitspec", ["explain", "224x224", "--min-pixels", "-1"], "--min-pixels"),
    ("vitspec", ["explain", "224x224", "--frames", "two"], "--frames"),
    ("vitspec", ["explain", "224x224", "--frames", "0"], "--frames"),
    ("vitspec", ["explain", "224x224", "--variant", "xyz"], "--variant"),
    ("vitspec", ["explain", "224x224", "--unknown-option"], "unrecognized"),
    ("vitspec", ["explain", "201x1"], "200"),  # aspect ratio > 200 with the long side first
    ("vitspec", ["explain", "5x0"], "positive"),
    ("vitspec", ["explain", "1.5x3"], "HEIGHTxWIDTH"),
    ("vitspec", ["explain", "-3x5"], "-3x5"),
    ("vitspec", ["explain", "224x224", "--max-pixels", "1e6"], "--max-pixels"),
    (
        "vitspec",
        ["explain", "224x224", "--variant", "qvu", "--min-pixels", "5000", "--max-pixels", "4000"],
        "max_pixels",
    ),
    ("vitspec", ["explain", "1x200", "--variant", "qvu", "--max-pixels", "3136"], "side of 0"),  # qvu floors a side
    ("vitspec", ["explain", "224x224", "--image", "no-such-picture.png"], "--image"),
    ("vitspec", ["explain", "--image", "no-such-picture.png"], "--image"),  # the size would come from the file
    ("vitspec", ["explain", "224x224", "--plot", NO_DIR.replace(".json", ".png")], "--plot"),
    ("vitspec", ["explain", "224x224", "--output", NO_DIR], "--output"),
    # configs
    ("vitspec", ["configs", "--bogus"], "unrecognized"),
    ("vitspec", ["configs", "extra"], "unrecognized"),
    ("vitspec", ["configs", "--output", NO_DIR], "--output"),
    # verify
    ("vitspec", ["verify", "--profile", "nope"], "--profile"),
    ("vitspec", ["verify", "--dtype", "float99"], "--dtype"),
    ("vitspec", ["verify", "--max-examples", "0"], "--max-examples"),
    ("vitspec", ["verify", "--max-examples", "x"], "--max-examples"),
    ("vitspec", ["verify", "--device", CUDA], "CUDA"),
    ("vitspec", ["verify", "--target", "vitspec.impl"], "package.module:attr"),
    ("vitspec", ["verify", "--target", "no_such_module_xyz:TARGET"], "no_such_module_xyz"),
    ("vitspec", ["verify", "--target", "vitspec.impl:NOPE"], "NOPE"),
    ("vitspec", ["verify", "-k", "("], "-k"),
    ("vitspec", ["verify", "--", "--no-such-pytest-option"], "--no-such-pytest-option"),
    ("vitspec", ["verify", "--", "-n", "x"], "numprocesses"),
    ("vitspec", ["verify", "--bogus"], "unrecognized"),
    # bench (each is refused before any model is built or timed)
    ("vitspec", ["bench", "--sizes", "abc"], "--sizes"),
    ("vitspec", ["bench", "--sizes", "0x5"], "--sizes"),
    ("vitspec", ["bench", "--sizes", "30x28"], "multiples of 28"),
    ("vitspec", ["bench", "--sizes", "448x448,"], "--sizes"),
    ("vitspec", ["bench", "--repeats", "-1"], "--repeats"),
    ("vitspec", ["bench", "--repeats", "0"], "--repeats"),
    ("vitspec", ["bench", "--repeats", "x"], "--repeats"),
    ("vitspec", ["bench", "--depth", "0"], "--depth"),
    ("vitspec", ["bench", "--depth", "-3"], "--depth"),
    ("vitspec", ["bench", "--device", CUDA], "CUDA"),
    ("vitspec", ["bench", "--device", "tpu9"], "--device"),
    ("vitspec", ["bench", "--dtype", "float64"], "--dtype"),
    ("vitspec", ["bench", "--output", NO_DIR], "--output"),
    ("vitspec", ["bench", "--output", str(Path(__file__).resolve().parent)], "folder"),
    ("vitspec", ["bench", "--json", "rows.json"], "unrecognized"),  # --json prints; --output writes a file
    ("vitspec", ["bench", "--bogus"], "unrecognized"),
    # mutants
    ("vitspec", ["mutants", "-j", "0"], "-j"),
    ("vitspec", ["mutants", "--jobs", "x"], "--jobs"),
    ("vitspec", ["mutants", "--maxfail", "0"], "--maxfail"),
    ("vitspec", ["mutants", "--timeout", "0"], "--timeout"),
    ("vitspec", ["mutants", "--only", "no_such_mutant"], "no_such_mutant"),
    ("vitspec", ["mutants", "--profile", "nope"], "--profile"),
    ("vitspec", ["mutants", "--output", NO_DIR], "--output"),
    ("vitspec", ["mutants", "--json", "report.json"], "unrecognized"),
    ("vitspec", ["mutants", "--bogus"], "unrecognized"),
    # ports
    ("vitspec", ["ports", "--port", "no_such_port"], "--port"),
    ("vitspec", ["ports", "--bogus"], "unrecognized"),
    ("vitspec", ["ports", "--profile", "fast"], "--profile"),
    # module entry points
    ("specmd", ["--bogus"], "unrecognized"),
    ("specmd", ["--output", NO_DIR], "--output"),
    ("gpu_check", ["--sizes", "abc"], "--sizes"),
    ("gpu_check", ["--repeats", "0"], "--repeats"),
]


def verbs() -> set[str]:
    """Every verb of the command line: the parser's subcommands and the dispatched ones."""
    import argparse

    parser = cli.build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name for s in subs for name in s.choices} | set(cli.DISPATCHED)


def entry(name: str):
    if name == "vitspec":
        return cli.main
    if name == "specmd":
        from vitspec.specmd import main

        return main
    from vitspec.gpu_check import main

    return main


def test_every_verb_has_bad_argument_rows():
    covered = {argv[0] for name, argv, _ in BAD if name == "vitspec" and argv}
    missing = sorted(verbs() - covered)
    assert not missing, f"verbs without rows in BAD: {missing}"
    assert {"explain", "configs", "verify", "bench", "mutants"} <= verbs()


@pytest.mark.parametrize("name,argv,mentions", BAD, ids=[f"{n}:{' '.join(a)}" for n, a, _ in BAD])
def test_bad_argument_is_one_line_and_exit_2(capsys, name, argv, mentions):
    try:
        rc = entry(name)(list(argv))
    except SystemExit as e:  # argparse exiting by itself is the bug this table is here to catch
        rc = ("SystemExit", e.code)
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert rc == 2, (rc, out.err[-2000:])
    assert out.out == "", out.out[-2000:]
    assert len(lines) == 1 and "error" in lines[0], out.err[-2000:]
    assert mentions in lines[0], lines[0]
    assert "Traceback" not in out.err


@pytest.mark.parametrize("verb", sorted(verbs()))
def test_unknown_option_on_every_verb(capsys, verb):
    rc = cli.main([verb] + (["224x224"] if verb == "explain" else []) + ["--no-such-option-anywhere"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--no-such-option-anywhere" in err[0], err


def test_a_reader_that_stops_early_ends_the_output_quietly():
    """`vitspec configs | head -3`: the pipe's reader is gone before vitspec writes; no BrokenPipeError."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen(
        [sys.executable, "-m", "vitspec.cli", "configs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    child.stdout.close()  # before the interpreter has started: its first write meets a closed pipe
    err = child.stderr.read().decode()
    rc = child.wait(timeout=120)
    assert "BrokenPipeError" not in err and "Traceback" not in err and "Exception ignored" not in err, err
    assert rc == 0, (rc, err)


@pytest.mark.parametrize(
    "source, names",
    [("def f(:\n", ["SyntaxError", ":1"]), ("import os\nraise RuntimeError('boom')\n", ["RuntimeError: boom", ":2"])],
)
def test_target_whose_module_fails_to_load_is_one_line(tmp_path, monkeypatch, capsys, source, names):
    """`verify --target broken:TARGET`: the module's own error and where it happened, in one line, exit 2."""
    module = f"vitspec_broken_{len(source)}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = cli.main(["verify", "--target", f"{module}:TARGET"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert all(n in err[0] for n in names) and module in err[0], err
