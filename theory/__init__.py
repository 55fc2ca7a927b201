"""Numerical verification of the theoretical claims of `gpm_sde`, run by `python -m theory`.

Each claim lives in its own module under `theory.claims`, states one result of the seed papers
and checks it numerically against a stated, justified tolerance. Importing this
package switches JAX to float64 before any computation, because every round-off tolerance in
the claims is stated for float64.
"""

import jax

jax.config.update("jax_enable_x64", True)
