"""Numerical verification of the theoretical claims of `gpm_sde`, run by `python -m theory`.

Each claim states one result of the seed papers and checks it numerically against a stated,
justified tolerance: its check is a module of `theory.claims` and its text (statement, source,
method, justification) the Markdown file of the same name next to it. The checks are built on the
public toolkit `gpm_sde.verify`; this package adds the runner (`theory.runner`: command line
and report), the claim and result types (`theory.types`), the figures (`theory.figures`), the
references to the docs (`theory.references`), the test laws and problems (`theory.laws`) and
a small training loop (`theory.fitting`). Importing this package switches JAX to float64
before any computation, because every round-off tolerance in the claims is stated for float64.
"""

import jax

jax.config.update("jax_enable_x64", True)
