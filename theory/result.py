"""`Result`: the outcome of one numerical check, with the reasons to trust it."""

from __future__ import annotations

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
      [`Claim.check`][theory.registry.Claim.check].
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
