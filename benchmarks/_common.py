"""What the results scripts share: the command line, the timed loop over models and the
report files."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.random as jr


def parse_args(
    doc: str | None,
    models: dict[str, Callable[..., Any]],
    argv: list[str] | None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
):
    """`--model NAME` (repeatable; default: all), `--fast`, `--out DIR`, `--seed N`, and
    whatever `extra(parser)` adds."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    if extra is not None:
        extra(parser)
    parser.add_argument("--model", action="append", choices=sorted(models))
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("reports/results"))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def timed_runs(
    models: dict[str, Callable[..., Any]], args: argparse.Namespace, *inputs: Any
) -> Iterator[tuple[str, Any, float, float]]:
    """Run each chosen model as `models[name](key, *inputs) -> (x, sample_seconds)`, with the
    key `fold_in(key(seed), index of name)`, and yield `(name, x, sample_seconds, seconds)`."""
    key = jr.key(args.seed)
    for name in args.model or list(models):
        start = time.perf_counter()
        x, sample_time = models[name](jr.fold_in(key, list(models).index(name)), *inputs)
        x = jax.block_until_ready(x)
        yield name, x, sample_time, time.perf_counter() - start


def write_report(out: Path, stem: str, summary: dict[str, Any], table: list[str]) -> None:
    """Write `out/stem.json` (the summary) and `out/stem.md` (the table lines)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=2))
    (out / f"{stem}.md").write_text("\n".join(table) + "\n")
