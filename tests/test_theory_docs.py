"""Every registered theory claim links to a docs section that exists and derives it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from theory.references import DOCS, ROOT, docs_link
from theory.registry import CLAIMS
from theory.runner import markdown_report
from theory.types import Claim, Result


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda claim: claim.name)
def test_claim_has_a_docs_section(claim: Claim) -> None:
    assert claim.name in DOCS, (
        f"claim {claim.name!r} has no docs link: add it to `theory/references.py` and derive it "
        "under a heading named after it in a page of docs/theory/"
    )
    path, _, anchor = DOCS[claim.name].partition("#")
    page = ROOT / path
    assert page.is_file(), f"{claim.name}: {path} does not exist"
    assert anchor == claim.name, f"{claim.name}: the anchor should be the claim name, got {anchor}"
    text = page.read_text(encoding="utf-8")
    assert claim.name in text
    # The anchor is the slug of a heading whose text is the claim name.
    heading = re.compile(rf"^#{{2,4}} {re.escape(claim.name)}\s*$", re.MULTILINE)
    assert heading.search(text), f"{path} has no heading `## {claim.name}`"


def test_every_link_names_a_registered_claim() -> None:
    registered = {claim.name for claim in CLAIMS}
    assert set(DOCS) <= registered, f"links to unknown claims: {set(DOCS) - registered}"


def test_report_table_links_the_claim_name(tmp_path: Path) -> None:
    claim = CLAIMS[0]
    result = Result(measured=0.0, tolerance=1.0, justification="j", details="d")
    report = markdown_report([(claim, result)], tmp_path, fast=True)
    link = docs_link(claim.name, tmp_path)
    assert link is not None
    assert f"| [{claim.name}]({link}) |" in report
    assert (tmp_path / link.partition("#")[0]).resolve() == (
        ROOT / DOCS[claim.name].partition("#")[0]
    )
