"""`samplers.tweedie_denoise` against the closed-form posterior mean of Gaussian data.

For $x_0 \\sim \\mathcal{N}(m, v I)$ and $x_t = \\alpha x_0 + \\sigma\\varepsilon$, the pair is
jointly Gaussian and $\\mathbb{E}[x_0 \\mid x_t = y] = m + \\alpha v (y - \\alpha m)/(\\alpha^2 v
+ \\sigma^2)$ (linear regression, no Tweedie involved). The library computes it from the exact
marginal score by Tweedie's formula; the two agree to float64 round-off (rtol 1e-12). A missing
$\\sigma^2$, a wrong sign or a missing $1/\\alpha$ fails by O(1).
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde import samplers


@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
@pytest.mark.parametrize("t", [0.05, 0.5])
def test_tweedie_denoise_is_the_gaussian_posterior_mean(name, t):
    process = getattr(gpm_sde, name)()
    m, v = jnp.array([1.5, -0.5]), 0.3
    law = gpm_sde.GaussianMixture(jnp.ones(1), m[None], v * jnp.eye(2)[None])
    score = gpm_sde.MixtureMarginalScore(process, law)
    y = 2.0 * jr.normal(jr.key(0), (64, 2))
    a, s = float(process.alpha(t)), float(process.sigma(t))
    expected = m + a * v * (y - a * m) / (a**2 * v + s**2)
    got = samplers.tweedie_denoise(process, score, t, y)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_tweedie_denoise_checks_its_arguments():
    process = gpm_sde.vp()
    score = gpm_sde.MixtureMarginalScore(process, gpm_sde.data.five_gaussians())
    with pytest.raises(TypeError, match="process"):
        samplers.tweedie_denoise(object(), score, 0.1, jnp.zeros((3, 2)))  # pyright: ignore[reportArgumentType]
    with pytest.raises((TypeError, ValueError), match=r"`eps`|`t`"):
        samplers.tweedie_denoise(process, score, 2.0, jnp.zeros((3, 2)))
