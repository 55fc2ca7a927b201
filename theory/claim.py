"""`Claim`: a theoretical statement of the seeds together with its numerical check."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .result import Result


@dataclass(frozen=True)
class Claim:
    """One claim of the library's theory and the check that tests it.

    **Fields:**

    - `name`: the short id used on the command line, e.g. `generator-identity`.
    - `statement`: the claim in one or two sentences, maths in `$...$`.
    - `source`: the seed paper and equation, and the DESIGN section.
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
