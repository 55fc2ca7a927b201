"""`python -m theory [CLAIM ...] [--list] [--fast] [--out DIR]`: run the claims, report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .registry import CLAIMS, select
from .report import markdown_report, text_table


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
