"""`theory/`: every registered claim passes in fast mode, and the command line behaves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from theory.registry import CLAIMS
from theory.types import Claim

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m theory ARGS` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "theory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


# Every claim in fast mode takes about 6 minutes on the 2-core machine, so the sweep is `slow`:
# CI runs it in its own step (`pytest -m slow`), and `python -m theory` runs the full claims.
# The default run still drives one claim end to end (`test_single_claim_writes_report`).
@pytest.mark.slow
@pytest.mark.parametrize("claim", CLAIMS, ids=lambda claim: claim.name)
def test_claim_passes_in_fast_mode(claim: Claim, tmp_path: Path) -> None:
    result = claim.check(fast=True, out_dir=tmp_path)
    assert result.passed, f"{claim.name}: {result.measured} > {result.tolerance}\n{result.details}"
    assert result.elapsed > 0.0
    if result.figure is not None:
        assert result.figure.is_file() and result.figure.is_relative_to(tmp_path)


def test_list_names_every_claim() -> None:
    proc = _cli("--list")
    assert proc.returncode == 0, proc.stderr
    for claim in CLAIMS:
        assert claim.name in proc.stdout


def test_unknown_claim_fails_and_names_the_valid_ones() -> None:
    proc = _cli("no-such-claim")
    assert proc.returncode != 0
    assert "no-such-claim" in proc.stderr
    for claim in CLAIMS:
        assert claim.name in proc.stderr


def test_single_claim_writes_report(tmp_path: Path) -> None:
    proc = _cli("generator-identity", "--fast", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| claim | source | measured | tolerance | verdict | time (s) |" in report
    assert "generator-identity" in report and "exact-marginals" not in report
    assert "PASS" in proc.stdout
