"""`gpm_sde.metrics.mode_weights`: the share of a cloud nearest each mixture centre.

The exact check is a hand-computed configuration. The sampled check draws from a mixture with
unequal weights whose components are 20 standard deviations apart, so a point lands in
another component's Voronoi cell with probability below 1e-20 and each share is binomial with
mean the mixture weight; the bar is 4 standard errors sqrt(w(1-w)/n) for each of the three
shares (a correct implementation fails it with probability below 2e-4 over the key).
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from gpm_sde import GaussianMixture
from gpm_sde.metrics import mode_weights


def test_hand_computed_shares_and_non_finite_points():
    means = jnp.array([[0.0, 0.0], [1.0, 0.0], [5.0, 6.0]])
    x = jnp.array(
        [
            [0.0, 0.0],  # centre 0
            [0.4, 0.0],  # 0.4 from centre 0, 0.6 from centre 1
            [0.9, 0.0],  # centre 1
            [5.0, 5.0],  # centre 2 (distance 1, versus 25 + 25 from centre 1)
            [0.5, 0.0],  # a tie between centres 0 and 1: the lower index
            [jnp.nan, 0.0],  # no mode
        ]
    )
    np.testing.assert_allclose(mode_weights(x, means), [3 / 6, 1 / 6, 1 / 6], rtol=0, atol=1e-15)


def test_shares_of_a_separated_mixture_are_its_weights():
    weights = jnp.array([0.5, 0.3, 0.2])
    means = jnp.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    law = GaussianMixture(weights, means, jnp.tile(jnp.eye(2), (3, 1, 1)))
    n = 20_000
    shares = np.asarray(mode_weights(law.sample(jr.key(0), n), means))
    se = np.sqrt(np.asarray(weights) * (1 - np.asarray(weights)) / n)
    assert np.all(np.abs(shares - np.asarray(weights)) < 4 * se), (shares, weights)
    # Swapping two centres swaps their shares: the shares follow the centres, not the order.
    swapped = np.asarray(mode_weights(law.sample(jr.key(0), n), means[jnp.array([1, 0, 2])]))
    np.testing.assert_allclose(swapped, shares[[1, 0, 2]], rtol=0, atol=1e-15)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="`means`"):
        mode_weights(jnp.zeros((4, 2)), jnp.zeros((3, 3)))
    with pytest.raises((TypeError, ValueError), match="`x`"):
        mode_weights(jnp.zeros(4), jnp.zeros((3, 2)))
    with pytest.raises(TypeError, match="`means`"):
        mode_weights(jnp.zeros((4, 2)), jnp.zeros((3, 2), int))
