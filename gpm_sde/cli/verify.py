r"""`gpm-sde verify [ARGS...]`: run the theory report, `python -m theory ARGS`, from the
current directory.

The `theory` package (one module per claim of the seed papers) lives in the repository next to
`gpm_sde`, not inside it: the library never imports it. The command therefore runs
it in a subprocess, and needs a clone of the repository (or an editable install of one).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

NOT_FOUND = (
    "gpm-sde verify: the `theory` package is not importable from {cwd}. The theory report "
    "lives in the gpm_sde repository, not in the installed package: run `gpm-sde verify` "
    "(or `python -m theory`) from the root of a clone of the repository, e.g. after "
    '`pip install -e ".[dev]"` in it.'
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="run the theory report (python -m theory)",
        description=(
            "Verify the theoretical claims numerically: runs `python -m theory ARGS` in a "
            "subprocess from the current directory and returns its exit code (1 if a claim "
            "fails). Writes reports/theory/report.md. Needs a clone of the repository; every "
            "argument is passed on to `python -m theory`."
        ),
    )
    parser.add_argument(
        "claims", nargs="*", metavar="CLAIM", help="the claims to run (default: all of them)"
    )
    parser.add_argument("--list", action="store_true", help="list the claims and exit")
    parser.add_argument("--fast", action="store_true", help="small settings (a quick check)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="the report's folder (default: reports/theory)",
    )
    parser.set_defaults(run=run)


def theory_available(cwd: str) -> bool:
    """Whether `python -m theory` run from `cwd` finds the repository's `theory` package."""
    probe = (
        "import importlib.util as u, sys; "
        "sys.exit(0 if u.find_spec('theory') and u.find_spec('theory.registry') else 3)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True)
    return done.returncode == 0


def verify(theory_args: Sequence[str]) -> int:
    """Run `python -m theory *theory_args` from the current directory; its exit code, or 2
    when `theory` cannot be imported."""
    cwd = os.getcwd()
    if not theory_available(cwd):
        print(NOT_FOUND.format(cwd=cwd), file=sys.stderr)
        return 2
    return subprocess.run([sys.executable, "-m", "theory", *theory_args], cwd=cwd).returncode


def run(args: argparse.Namespace) -> int:
    forwarded = list(args.claims)
    if args.list:
        forwarded.append("--list")
    if args.fast:
        forwarded.append("--fast")
    if args.out is not None:
        forwarded += ["--out", args.out]
    forwarded += list(getattr(args, "extra", []))
    return verify(forwarded)
