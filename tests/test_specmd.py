"""spec/SPEC.md is generated (vitspec/specmd.py) and must not drift from the spec data and the reference."""

from __future__ import annotations

import pytest

from vitspec import specmd
from vitspec.spec.configs import DISCREPANCIES
from vitspec.spec.differences import DIFFERENCES, SOURCES
from vitspec.spec.protocol import STAGES


@pytest.fixture(scope="module")
def text() -> str:
    return specmd.generate()


def test_committed_spec_md_is_current(text):
    committed = specmd.SPEC_MD.read_text(encoding="utf-8") if specmd.SPEC_MD.exists() else ""
    ok, message = specmd.check(specmd.SPEC_MD)
    assert ok and committed == text, message + "\nregenerate with: python -m vitspec.specmd"


def test_generation_is_deterministic(text):
    assert specmd.generate() == text


def test_every_stage_with_signature_in_pipeline_order(text):
    for s in STAGES:
        assert f"`{s.name}`" in text and s.signature in text and s.rule in text, s.name
    modules = [
        "resize",
        "pixels",
        "patchify",
        "embed",
        "rope",
        "windows",
        "attention",
        "block",
        "merger",
        "tower",
        "tokens",
    ]  # ARCHITECTURE.md: the order data flows
    positions = [text.index(f"### {m} (reference/{m}.py") for m in modules]
    assert positions == sorted(positions)


def test_every_configuration_discrepancy(text):
    for d in DISCREPANCIES:
        assert f"**{d['row']}** ({d['models']}): {d['explanation']}" in text
    # SPEC-NOTES §5 values, marked in the table
    for marked in ("3420 **(!)**", "11008 **(!)**", "151936 **(!)**", "152064 **(!)**"):
        assert marked in text


def test_every_recorded_difference(text):
    for d in DIFFERENCES:
        assert f"### {d.id} (`{d.stage}`)" in text and d.choice in text
        assert {source for source, _ in d.behaviours} <= set(SOURCES)


def test_invariant_catalogue_section(text):
    try:
        from vitspec.spec.invariants import INVARIANTS
    except ImportError:
        assert "spec/invariants.py is not present" in text
        return
    for inv in INVARIANTS:
        assert f"| {inv.id} | `{inv.stage}` |" in text


@pytest.mark.parametrize(
    "fragment",
    [
        "first [1, 2, 9, 10]",
        "first patch → [12.2, 14.4]",
        "output 7×7",
        "distinct values {-9}",  # seed §1
        "grid_thw [1, 16, 16]: 256 patches",
        "4 of 112×112 px (64 patches)",
        "256 rows of 588 values",  # seed §3
        "Merged tokens: 64",
        "1080×1920 (min_pixels 3136, max_pixels 12845056) → 1092×1932",  # SPEC-NOTES §1.1, §4
        "grid_thw [1, 78, 138]",
        "Merged tokens: 2691",
        "Windows: 180 in all",
        "728×1316",
        "grid_thw [3, 16, 24]",
        "Full-attention segments: 3 of 384 patches",
        "Merged tokens: 288",  # 5 frames → t = 3
        "temporal patches (0, 1), (2, 3), (4, 4)",  # §1.2: the last frame repeated
        "| 3000×4000 | 3136 | 12845056 | 2996×4004 |",
        "| 20×30 | 3136 | 12845056 | 56×84 |",
        "28×812 (HF) and 28×196 (qwen-vl-utils)",
        "cu_window_seqlens [0, 64, 96, 160, 192, 224, 240]",
        "336×336: the inverse permutation differs",
        "448×448: the inverse permutation equals",
        "(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3)",  # merge-block order of positions
    ],
)
def test_hand_derived_values_appear(text, fragment):
    assert fragment in text


def test_check_flags_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "SPEC.md"
    stale.write_text(specmd.generate().replace("1092×1932", "1092×1960"), encoding="utf-8")
    assert specmd.main(["--check", "--output", str(stale)]) == 1
    err = capsys.readouterr().err
    assert "changed lines" in err and "1092×1960" in err
    assert specmd.main(["--output", str(stale)]) == 0
    assert specmd.main(["--check", "--output", str(stale)]) == 0
    assert specmd.main(["--check", "--output", str(tmp_path / "missing.md")]) == 1


def test_refuses_to_rewrite_an_installed_copy(tmp_path, monkeypatch, capsys):
    """An installed package's spec/SPEC.md (site-packages) is never rewritten; --output writes elsewhere."""
    installed = tmp_path / "lib" / "site-packages" / "vitspec" / "spec" / "SPEC.md"
    installed.parent.mkdir(parents=True)
    (installed.parent.parent / "pyproject.toml").write_text("")  # even beside a pyproject.toml
    installed.write_text("old", encoding="utf-8")
    monkeypatch.setattr(specmd, "SPEC_MD", installed)
    assert specmd.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--output" in err[0] and "installed" in err[0]
    assert installed.read_text(encoding="utf-8") == "old"
    out = tmp_path / "SPEC.md"
    assert specmd.main(["--output", str(out)]) == 0 and out.read_text(encoding="utf-8") == specmd.generate()
    # a checkout's spec/SPEC.md is the default target
    checkout = tmp_path / "src"
    (checkout / "spec").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    assert specmd.in_checkout(checkout / "spec" / "SPEC.md")
    assert not specmd.in_checkout(tmp_path / "lib" / "spec" / "SPEC.md")  # no pyproject.toml beside spec/


def test_output_folder_must_exist(tmp_path, capsys):
    assert specmd.main(["--output", str(tmp_path / "no" / "SPEC.md")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
