"""References: where each claim is derived, claim name → its section in the docs, relative to
the repository root.

The report links every claim of its summary table to this section (see
[`theory.runner`][theory.runner]); `tests/test_theory_docs.py` checks that every registered
claim has an entry, that the page exists and that it has a heading named after the claim.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root, against which the paths of `DOCS` are written."""

_PAGES: dict[str, tuple[str, ...]] = {
    "forward-processes.md": ("exact-marginals",),
    "reverse-and-likelihood.md": (
        "generator-identity",
        "reverse-marginals",
        "lambda-family",
        "pf-likelihood",
        "dsm-minimiser",
    ),
    "solvers.md": ("convergence-orders", "sampler-orders"),
    "ddpm.md": ("ddpm-closed-form", "ddpm-eps-mean", "ddpm-exact-eps", "ddpm-to-vp"),
    "langevin.md": ("langevin-vs-annealed",),
    "diffflow.md": (
        "diffflow-invariance-exact",
        "diffflow-invariance-gaussian",
        "diffflow-invariance-meanfield",
        "diffflow-ends",
        "diffflow-spectrum",
        "kl-dissipation",
        "diffflow-likelihood",
    ),
    "particle-models.md": ("score-gan-field", "discriminator-flow", "int-pm-ntk"),
    "gan-theory.md": ("optimal-discriminator", "fgan-tightness", "lsgan-pearson", "wgan-gp-w1"),
    "latent-models.md": ("elbo-ppca", "iwae-monotone"),
    "guidance.md": ("guidance",),
}

DOCS: dict[str, str] = {
    name: f"docs/theory/{page}#{name}" for page, names in _PAGES.items() for name in names
}
"""Claim name → `docs/theory/<page>.md#<claim name>` (the section's heading is the name)."""


def docs_link(name: str, out_dir: Path) -> str | None:
    """The link to the docs section of claim `name` as seen from a file in `out_dir` (a
    relative path with its `#anchor`), or `None` when the claim has no entry."""
    target = DOCS.get(name)
    if target is None:
        return None
    path, _, anchor = target.partition("#")
    rel = os.path.relpath(ROOT / path, out_dir.resolve())
    return f"{Path(rel).as_posix()}#{anchor}"
