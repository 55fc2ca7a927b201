r"""`gpm-sde demo [--out DIR] [--fast] [--seed N]`: run the repository's `examples/demo.py`.

The demo (DiffFlow across $g$ and the reverse λ-family on GPM's five-Gaussian toy) is an
example script, `examples/demo.py`, like every other user task: the installed package holds
the library, not its examples. The command finds the script in the current directory's
`examples/` (a clone of the repository), or next to the package's source (an editable
install), and runs it in this process; without a clone it says where the demo lives, as
`gpm-sde verify` does for the theory report.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path("examples") / "demo.py"

NOT_FOUND = (
    "gpm-sde demo: the demo is the script examples/demo.py of the gpm_sde repository, not part "
    "of the installed package, and none was found in {cwd} or next to the package. Run "
    "`gpm-sde demo` (or `python examples/demo.py`) from the root of a clone of the repository."
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="DiffFlow across g and the reverse λ-family on a 2-D mixture",
        description=(
            "On GPM's five-Gaussian toy law: (a) DiffFlow at g = 0, ½√(2β), √(2β) with the "
            "mean-field kernel generated score and the exact annealed data score, and (b) the "
            "reverse λ-family of the VP process (λ = 0, g/2, g) with the exact score. Writes "
            "a figure of the clouds and marginals (demo.png) and a table of metrics "
            "(metrics.md, metrics.json: MMD to the data and the gaps between members), and "
            "prints the table. About a minute on a laptop CPU. Runs the repository's "
            "examples/demo.py, so it needs a clone of the repository."
        ),
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("reports/demo"),
        help="output folder (default: reports/demo)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="tiny settings (500 particles, fewer steps): a smoke test, about 20 s",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default: 0)")
    parser.set_defaults(run=run)


def find_script(cwd: Path) -> Path | None:
    """`examples/demo.py` under `cwd`, else next to the package's source tree; `None` when
    neither exists (an installed package without its repository)."""
    for root in (cwd, Path(__file__).resolve().parents[2]):
        if (root / SCRIPT).is_file():
            return root / SCRIPT
    return None


def run(args: argparse.Namespace) -> int:
    script = find_script(Path.cwd())
    if script is None:
        print(NOT_FOUND.format(cwd=Path.cwd()), file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("gpm_sde_examples_demo", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    argv = ["--out", str(args.out), "--seed", str(args.seed)] + (["--fast"] if args.fast else [])
    return int(module.main(argv))
