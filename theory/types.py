"""The claim and result types: a theoretical statement with its check, the check's outcome,
and the Markdown table in which claims and the report lay out numbers.

A claim is two files under `theory/claims/`: `NAME.py` computes (its `run` returns a
[`Measurement`][theory.types.Measurement]) and `NAME.md` says, in plain Markdown, what is
claimed and why the tolerance is what it is. The Markdown has a title (`# claim-name`) and the
sections `## Statement`, `## Source`, `## Method`, `## Details` and `## Why this tolerance`; the
last two are templates whose `{{name}}` or `{{name:spec}}` placeholders are filled from
`Measurement.values` with Python's `format(value, spec)`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_SECTIONS = ("Statement", "Source", "Method", "Details", "Why this tolerance")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*(?::([^}]*))?\}\}")


@dataclass(frozen=True)
class Measurement:
    """What a claim's `run` returns.

    **Fields:**

    - `measured`: the measured error (what the claim says should be small).
    - `tolerance`: the largest error consistent with the claim.
    - `values`: the numbers and tables that fill the placeholders of the claim's `Details` and
      `Why this tolerance` templates (every one must be used, so code and text stay in sync).
    - `figure`: a PNG written under the output folder, or `None`.
    """

    measured: float
    tolerance: float
    values: Mapping[str, object] = field(default_factory=dict)
    figure: Path | None = None


@dataclass(frozen=True)
class Result:
    """The outcome of checking one claim, its texts rendered.

    **Fields:**

    - `measured`, `tolerance`: as in [`Measurement`][theory.types.Measurement].
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


def render(template: str, values: Mapping[str, object], where: str) -> str:
    """Fill the `{{name}}` / `{{name:spec}}` placeholders of `template` from `values`.

    Raises `KeyError` naming `where` (the claim and section) for a placeholder without a
    value."""

    def fill(match: re.Match[str]) -> str:
        name, spec = match.group(1), match.group(2) or ""
        if name not in values:
            raise KeyError(f"{where}: the template uses {{{{{name}}}}}, which run() did not return")
        return format(values[name], spec)

    return _PLACEHOLDER.sub(fill, template)


@dataclass(frozen=True)
class Claim:
    """One claim of the library's theory and the check that tests it.

    **Fields:**

    - `name`: the short id used on the command line, e.g. `generator-identity`.
    - `statement`: the claim in one or two sentences, maths in `$...$`.
    - `source`: the seed paper and equation.
    - `method`: how the check tests the claim, in a few sentences.
    - `details`, `justification`: the templates of the report's details and of why the
      tolerance is what it is (see [`render`][theory.types.render]).
    - `run`: `run(fast, out_dir) -> Measurement`; `fast` selects small settings (for tests),
      and figures go under `out_dir`.
    """

    name: str
    statement: str
    source: str
    method: str
    details: str
    justification: str
    run: Callable[[bool, Path], Measurement]

    @classmethod
    def load(cls, module_file: str, run: Callable[[bool, Path], Measurement]) -> Claim:
        """The claim whose texts are in the Markdown file next to `module_file` (a claim
        module's `__file__`), checked by `run`."""
        path = Path(module_file).with_suffix(".md")
        text = path.read_text(encoding="utf-8")
        title = re.match(r"# (\S+)\n", text)
        if title is None:
            raise ValueError(f"{path}: the first line must be the title `# claim-name`")
        chunks = re.split(r"^## (.+)\n", text[title.end() :], flags=re.MULTILINE)
        sections = dict(zip(chunks[1::2], (c.strip() for c in chunks[2::2]), strict=True))
        if tuple(sections) != _SECTIONS:
            raise ValueError(f"{path}: sections {tuple(sections)}, expected {_SECTIONS} in order")
        # One paragraph per line in the short fields: join the source's wrapped lines.
        statement, source, method = (
            " ".join(sections[s].split()) for s in ("Statement", "Source", "Method")
        )
        return cls(
            title.group(1),
            statement,
            source,
            method,
            sections["Details"],
            sections["Why this tolerance"],
            run,
        )

    def check(self, fast: bool, out_dir: Path) -> Result:
        """Run the check into `out_dir` (created if missing), time it and render its texts."""
        out_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        m = self.run(fast, out_dir)
        elapsed = time.perf_counter() - start
        details = render(self.details, m.values, f"claim {self.name}, Details")
        why = render(self.justification, m.values, f"claim {self.name}, Why this tolerance")
        used = {name for name, _ in _PLACEHOLDER.findall(self.details + self.justification)}
        unused = set(m.values) - used
        if unused:
            raise ValueError(f"claim {self.name}: run() returned unused values {sorted(unused)}")
        return Result(m.measured, m.tolerance, why, details, m.figure, elapsed)


@dataclass
class Parts:
    """The parts of a claim's check, each a measured error against its own tolerance: a
    `part | measured | tolerance` table and the worst ratio, the claim's measurement against
    a tolerance of 1."""

    rows: list[tuple[str, float, float, str]] = field(default_factory=list)

    def add(self, label: str, measured: float, tolerance: float, spec: str = ".1e") -> None:
        """Add the part `label` (Markdown, `|` escaped) measured against `tolerance`."""
        self.rows.append((label, float(measured), float(tolerance), spec))

    @property
    def ratio(self) -> float:
        """$\\max_k$ measured$_k$ / tolerance$_k$ (NaN if any part is NaN)."""
        ratios = [m / t for _, m, t, _ in self.rows]
        return math.nan if any(math.isnan(r) for r in ratios) else max(ratios)

    def table(self) -> str:
        """The Markdown table of the parts."""
        rows = [[label, format(m, spec), f"{t:g}"] for label, m, t, spec in self.rows]
        return table(["part", "measured", "tolerance"], rows)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (`|` inside cells must already be escaped)."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
