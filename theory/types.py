"""The claim and result types: a theoretical statement with its check, the check's outcome,
and the Markdown table in which claims and the report lay out numbers."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    """The outcome of checking one claim.

    **Fields:**

    - `measured`: the measured error (what the claim says should be small).
    - `tolerance`: the largest error consistent with the claim.
    - `justification`: why this tolerance (round-off, k standard errors and how the standard
      error was computed, discretisation order, ...).
    - `details`: Markdown shown in the report (e.g. a table of per-case errors).
    - `figure`: a PNG written under the output folder, or `None`.
    - `elapsed`: wall-clock seconds of the check, filled in by
      [`Claim.check`][theory.types.Claim.check].
    """

    measured: float
    tolerance: float
    justification: str
    details: str
    figure: Path | None = None
    elapsed: float = 0.0

    @property
    def passed(self) -> bool:
        """`measured <= tolerance` (a NaN measurement fails)."""
        return self.measured <= self.tolerance


@dataclass(frozen=True)
class Claim:
    """One claim of the library's theory and the check that tests it.

    **Fields:**

    - `name`: the short id used on the command line, e.g. `generator-identity`.
    - `statement`: the claim in one or two sentences, maths in `$...$`.
    - `source`: the seed paper and equation.
    - `method`: how the check tests the claim, in a few sentences.
    - `run`: `run(fast, out_dir) -> Result`; `fast` selects small settings (for tests), and
      figures go under `out_dir`.
    """

    name: str
    statement: str
    source: str
    method: str
    run: Callable[[bool, Path], Result]

    def check(self, fast: bool, out_dir: Path) -> Result:
        """Run the check into `out_dir` (created if missing) and time it."""
        out_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        result = self.run(fast, out_dir)
        return dataclasses.replace(result, elapsed=time.perf_counter() - start)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (`|` inside cells must already be escaped)."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
