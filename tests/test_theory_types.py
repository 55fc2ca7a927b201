"""`theory.types`: a claim's Markdown text is parsed into its fields, its templates are filled
from the run's values (a missing or an unused value is an error naming the claim), and `Parts`
takes the worst ratio."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from theory.types import Claim, Measurement, Parts

TEXT = """# toy-claim

## Statement

One plus one
is two.

## Source

Arithmetic.

## Method

Add.

## Details

{{parts}}

Sum = {{total:.3f}} over {{n}} terms.

## Why this tolerance

Round-off at {{n}} terms.
"""


def _claim(tmp_path: Path, text: str, values: dict[str, object]) -> Claim:
    (tmp_path / "toy.md").write_text(text, encoding="utf-8")
    parts = Parts()
    parts.add("sum error", 0.0, 1e-12)

    def run(fast: bool, out_dir: Path) -> Measurement:
        return Measurement(parts.ratio, 1.0, {"parts": parts.table(), **values})

    return Claim.load(str(tmp_path / "toy.py"), run)


def test_load_and_render(tmp_path: Path) -> None:
    claim = _claim(tmp_path, TEXT, {"total": 2.0, "n": 2})
    assert claim.name == "toy-claim"
    assert claim.statement == "One plus one is two."  # wrapped lines joined
    assert (claim.source, claim.method) == ("Arithmetic.", "Add.")
    result = claim.check(True, tmp_path / "out")
    assert "Sum = 2.000 over 2 terms." in result.details
    assert "| sum error | 0.0e+00 | 1e-12 |" in result.details
    assert result.justification == "Round-off at 2 terms."
    assert result.passed and result.elapsed > 0.0


def test_missing_and_unused_values_are_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match=r"toy-claim, Details.*\{\{total\}\}"):
        _claim(tmp_path, TEXT, {"n": 2}).check(True, tmp_path)
    with pytest.raises(ValueError, match=r"toy-claim.*unused values \['extra'\]"):
        _claim(tmp_path, TEXT, {"total": 2.0, "n": 2, "extra": 1}).check(True, tmp_path)


def test_sections_must_be_complete_and_in_order(tmp_path: Path) -> None:
    swapped = TEXT.replace("## Source", "## Tmp").replace("## Method", "## Source")
    with pytest.raises(ValueError, match=r"toy\.md: sections"):
        _claim(tmp_path, swapped.replace("## Tmp", "## Method"), {})
    with pytest.raises(ValueError, match="title"):
        _claim(tmp_path, TEXT.replace("# toy-claim\n", ""), {})


def test_parts_ratio_is_the_worst_part_and_nan_fails() -> None:
    parts = Parts()
    parts.add("a", 1e-13, 1e-12)
    parts.add("b", 3.0, 5.0, ".2f")
    assert parts.ratio == pytest.approx(0.6)
    assert "| b | 3.00 | 5 |" in parts.table()
    parts.add("c", math.nan, 1.0)
    assert math.isnan(parts.ratio)
