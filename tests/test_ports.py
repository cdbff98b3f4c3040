"""`vitspec ports` without building environments: the port files in ports/ follow the format, a verify record
becomes per-stage statuses, every failing cell of docs/PORTS.md is explained or flagged UNEXPLAINED, and the
checked-in results render to the checked-in docs/PORTS.md."""

from __future__ import annotations

import json

import pytest

from vitspec import ports

RECORD = {
    "name": "mlx-vlm 0.1.12 qwen2_5_vl",
    "dtype": "float32",
    "inline": {"cu_seqlens": "computed inline in VisionModel.__call__"},
    "stages": {
        "rotary_position_ids": {
            "counts": {"checks": 5, "passed": 2, "failed": 1, "not covered": 0},
            "reasons": {},
            "differences": [],
            "failures": [{"test": "tests/test_rope.py::t", "message": "[rotary_position_ids] x"}],
        },
        "window_index": {
            "counts": {"checks": 4, "passed": 4},
            "reasons": {},
            "differences": [
                "window_index: empty windows kept: grid_thw [[1, 14, 24]]: 2 zero-length windows",
                "window_index: empty windows kept: grid_thw [[3, 8, 4]]: 3 zero-length windows",
            ],
            "failures": [],
            "helpers": {"cu_seqlens": 1},
        },
        "rms_norm": {"counts": {"checks": 3, "passed": 3}, "reasons": {}, "differences": [], "failures": []},
        "smart_resize": {
            "counts": {"checks": 6, "not covered": 6},
            "reasons": {"target lacks it": 6},
            "differences": [],
            "failures": [],
        },
    },
}


def test_port_files_follow_the_format():
    found = ports.load_ports()
    assert {"hf", "mlx_vlm"} <= set(found)
    for port in found.values():
        assert port["versions"] and port["dtypes"] and port["target"]
        assert "float32" in port["dtypes"]


def test_a_bad_port_file_is_a_usage_error(tmp_path):
    (tmp_path / "broken.toml").write_text(
        'title = "x"\npackage = "x"\nversions = ["1"]\ndtypes = ["float32"]\n'
        'install = ["x"]\n[[target]]\nname = "Bad-Name"\ntarget = "m:T"\n'
    )
    with pytest.raises(ports.UsageError, match="name"):
        ports.load_ports(tmp_path)


def test_record_becomes_stage_statuses():
    stages, totals = ports.results_from_record(RECORD)
    assert stages["rotary_position_ids"]["status"] == "fail"
    assert stages["window_index"]["status"] == "recorded difference"
    assert stages["rms_norm"]["status"] == "pass"
    assert stages["smart_resize"]["status"] == "not covered"
    assert stages["cu_seqlens"]["status"] == "not covered" and "inline" in stages["cu_seqlens"]["reasons"][0]
    assert totals["failed"] == 1 and totals["passed"] == 9


def result(version: str, record=RECORD) -> dict:
    stages, totals = ports.results_from_record(record)
    return {
        "format": ports.RESULTS_FORMAT,
        "port": "mlx_vlm",
        "title": "mlx-vlm",
        "name": "mlx_vlm",
        "model": "Qwen2.5-VL",
        "target": "vitspec.adapters.mlx_vlm:TARGET",
        "version": version,
        "dtype": "float32",
        "status": "ran",
        "reason": "",
        "exit_code": 1,
        "profile": "ci",
        "max_examples": None,
        "verify_seconds": 100.0,
        "install_seconds": 5.0,
        "totals": totals,
        "stages": stages,
    }


def test_failures_are_explained_or_flagged():
    port = ports.load_ports()["mlx_vlm"]
    explained = ports.render({"mlx_vlm": port}, [result("0.1.12")])
    assert "upstream bug" in explained and "0.1.23" in explained and "UNEXPLAINED" not in explained
    flagged = ports.render({"mlx_vlm": port}, [result("0.7.10")])  # the same failure in a release the file
    assert "## UNEXPLAINED failures" in flagged and "mlx_vlm 0.7.10 float32 rotary_position_ids" in flagged
    assert "≈" in explained and "empty windows kept" in explained


def test_helpers_and_differences_are_summed_up_per_stage():
    """A check that built its inputs with a reference helper says so in the matrix; repeated recorded differences
    of one form are one line with their count."""
    text = ports.render({"mlx_vlm": ports.load_ports()["mlx_vlm"]}, [result("0.1.23")])
    assert "window_index: 1 check took cu_seqlens from the reference, to build inputs only" in text
    assert "empty windows kept (2 cases, e.g. grid_thw [[1, 14, 24]]: 2 zero-length windows)" in text
    assert text.count("zero-length windows") == 1


def test_not_run_is_reported_never_dropped():
    port = ports.load_ports()["mlx_vlm"]
    r = {
        **result("0.1.12"),
        "status": "install failed",
        "reason": "pip: no matching distribution",
        "stages": {},
        "totals": {},
    }
    text = ports.render({"mlx_vlm": port}, [r])
    assert "INSTALL FAILED" in text and "∅" in text


def test_checked_in_results_render_to_the_checked_in_matrix():
    results = ports.load_results()
    if not results:
        pytest.fail("ports/results holds no results: run vitspec ports")
    assert ports.PORTS_MD.read_text() == ports.render(ports.load_ports(), results), (
        "docs/PORTS.md is stale: run vitspec ports --render"
    )
    for r in results:
        assert r["format"] == ports.RESULTS_FORMAT and r["status"] in ports.STATUSES
        assert all(e["status"] in ports.STAGE_STATUSES for e in r["stages"].values())
        json.dumps(r)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--port", "mlx_vlm", "--version", "9.9", "--list"], "--version must be one of"),
        (["--dtype", "int8", "--list"], "--dtype must be one of"),
        (["--name", "nobody", "--list"], "--name must be one of"),
        (["--max-examples", "0", "--list"], "positive integer"),
    ],
)
def test_bad_selection_is_one_usage_line(argv, words, capsys):
    assert ports.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
