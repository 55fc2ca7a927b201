"""The runner: `python -m theory [CLAIM ...] [--list] [--fast] [--out DIR]` runs the claims,
prints a table of verdicts and writes `report.md` with one section per claim."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .references import docs_link
from .registry import CLAIMS, select
from .types import Claim, Result, table

HEADER = ("claim", "source", "measured", "tolerance", "verdict", "time (s)")


def verdict(result: Result) -> str:
    """`PASS` or `FAIL`."""
    return "PASS" if result.passed else "FAIL"


def _row(claim: Claim, result: Result, name: str | None = None) -> list[str]:
    return [
        name or claim.name,
        claim.source,
        f"{result.measured:.3g}",
        f"{result.tolerance:.3g}",
        verdict(result),
        f"{result.elapsed:.1f}",
    ]


def text_table(outcomes: Sequence[tuple[Claim, Result]]) -> str:
    """A plain-text table of the outcomes, columns aligned, for the terminal."""
    rows = [list(HEADER), *(_row(claim, result) for claim, result in outcomes)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _section(claim: Claim, result: Result, out_dir: Path) -> str:
    parts = [
        f"## `{claim.name}`: {verdict(result)}",
        f"**Statement.** {claim.statement}",
        f"**Source.** {claim.source}",
        f"**Method.** {claim.method}",
        f"**Result.** measured {result.measured:.3g}, tolerance {result.tolerance:.3g}, "
        f"{result.elapsed:.1f} s.",
        result.details,
        f"**Why this tolerance.** {result.justification}",
    ]
    if result.figure is not None:
        parts.append(f"![{claim.name}]({result.figure.relative_to(out_dir).as_posix()})")
    return "\n\n".join(parts)


def _linked_name(claim: Claim, out_dir: Path) -> str:
    """The claim's name, linked to its derivation in the docs when it has one."""
    link = docs_link(claim.name, out_dir)
    return claim.name if link is None else f"[{claim.name}]({link})"


def markdown_report(outcomes: Sequence[tuple[Claim, Result]], out_dir: Path, fast: bool) -> str:
    """The whole `report.md`: the summary table first, then a section per claim."""
    failed = sum(not result.passed for _, result in outcomes)
    mode = "fast settings (`--fast`)" if fast else "full settings"
    summary = (
        f"# gpm_sde theory report\n\n{len(outcomes)} claim(s) checked with {mode}: "
        f"{len(outcomes) - failed} passed, {failed} failed. A claim passes when the measured "
        "error is at most its tolerance; each section says why the tolerance is what it is."
    )
    rows = [_row(claim, result, _linked_name(claim, out_dir)) for claim, result in outcomes]
    sections = [_section(claim, result, out_dir) for claim, result in outcomes]
    return "\n\n".join([summary, table(HEADER, rows), *sections]) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m theory",
        description="Verify the theoretical claims of gpm_sde numerically and write a report.",
    )
    parser.add_argument("claims", nargs="*", metavar="CLAIM", help="claims to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the claims and exit")
    parser.add_argument("--fast", action="store_true", help="small settings (for tests)")
    parser.add_argument(
        "--out", type=Path, default=Path("reports/theory"), help="output folder for report.md"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return 1 if a claim fails (or a name is unknown), else 0."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for claim in CLAIMS:
            print(f"{claim.name}\n    {claim.statement}\n    source: {claim.source}")
        return 0
    try:
        claims = select(args.claims)
    except KeyError as err:
        parser.error(err.args[0])
    outcomes = []
    for claim in claims:
        print(f"running {claim.name} ...", file=sys.stderr, flush=True)
        outcomes.append((claim, claim.check(args.fast, args.out)))
    print(text_table(outcomes))
    report = args.out / "report.md"
    report.write_text(markdown_report(outcomes, args.out, args.fast), encoding="utf-8")
    print(f"\nreport: {report}")
    return 0 if all(result.passed for _, result in outcomes) else 1
