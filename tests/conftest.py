"""Shared fixtures and settings.

- float64 everywhere: tolerances that come from round-off are stated for float64.
- hypothesis: the built-in `ci` profile is active when the `CI` variable is set (hypothesis
  loads it itself); otherwise the `dev` profile, without deadlines (JAX compiles on first call).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from hypothesis import HealthCheck, settings
from hypothesis._settings import is_in_ci

jax.config.update("jax_enable_x64", True)

settings.register_profile(
    "dev",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
if not is_in_ci():
    settings.load_profile("dev")


@pytest.fixture
def key() -> jax.Array:
    """A fixed PRNG key; tests split it for independent draws."""
    return jax.random.key(0)


@pytest.fixture
def mixture_2d():
    """A 2-D, 3-component mixture with full, distinct covariances and unequal weights."""
    import gpm_sde

    weights = jnp.array([0.2, 0.5, 0.3])
    means = jnp.array([[-2.0, 0.5], [1.5, -1.0], [0.5, 2.5]])
    covs = jnp.array(
        [
            [[0.30, 0.10], [0.10, 0.20]],
            [[0.50, -0.20], [-0.20, 0.40]],
            [[0.15, 0.00], [0.00, 0.60]],
        ]
    )
    return gpm_sde.GaussianMixture(weights, means, covs)
