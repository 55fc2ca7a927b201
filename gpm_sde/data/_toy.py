r"""Two-dimensional toy laws: Gaussian mixtures (exact laws) and keyed samplers.

The mixtures are [`GaussianMixture`][gpm_sde.GaussianMixture]s with isotropic components of
equal weight, so their smoothed laws $q_\sigma$ and every marginal of a linear forward process
are exact mixtures as well. The samplers are pure JAX functions `(key, n) -> (n, 2)`
drawing $n$ i.i.d. points; the same key gives the same points. They are written here rather
than taken from scikit-learn (whose `make_moons` and `make_swiss_roll` are NumPy, unkeyed, and
place the moon parameters on a grid rather than drawing them).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_int, check_positive
from ..distributions import GaussianMixture


def _check_n(n) -> None:
    check_int("n", n, 0, "the number of points", example=1000)


def _isotropic_mixture(means: np.ndarray, std: float) -> GaussianMixture:
    k, d = means.shape
    weights = np.full(k, 1.0 / k)
    covs = np.broadcast_to(std**2 * np.eye(d), (k, d, d))
    return GaussianMixture(jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs))


def five_gaussians(radius: float = 3.0, std: float = 0.5) -> GaussianMixture:
    r"""GPM's five-Gaussian toy law (Franceschi et al. 2023, §6.1): five equally weighted
    isotropic Gaussians centred on a circle,

    $$q = \frac15 \sum_{k=0}^{4} \mathcal{N}\big(r(\cos\tfrac{2\pi k}{5},
    \sin\tfrac{2\pi k}{5}),\ s^2 I_2\big),$$

    with radius $r = 3$ and standard deviation $s = 0.5$ by default (the first mean is
    $(r, 0)$).
    """
    check_positive("radius", radius, fix="pass the circle radius, e.g. radius=3.0")
    check_positive("std", std, fix="pass the component standard deviation, e.g. std=0.5")
    angles = 2.0 * np.pi * np.arange(5) / 5
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return _isotropic_mixture(means, std)


def eight_gaussians(radius: float = 2.0, std: float = 0.02) -> GaussianMixture:
    r"""The eight-Gaussian ring, the common toy law of Gulrajani et al. 2017 (WGAN-GP, §5.1 and
    their released `gan_toy.py`): eight equally weighted isotropic Gaussians at the angles
    $2\pi k/8$ of a circle of radius $r$,

    $$q = \frac18 \sum_{k=0}^{7} \mathcal{N}\big(r(\cos\tfrac{2\pi k}{8},
    \sin\tfrac{2\pi k}{8}),\ s^2 I_2\big).$$

    The defaults $r = 2$, $s = 0.02$ are that script's centres (the unit-circle points
    $(\pm1, 0), (0, \pm1), (\pm1, \pm1)/\sqrt2$ scaled by 2) and noise; the script then divides
    every point by 1.414, which is `eight_gaussians(2 / 1.414, 0.02 / 1.414)`.
    """
    check_positive("radius", radius, fix="pass the circle radius, e.g. radius=2.0")
    check_positive("std", std, fix="pass the component standard deviation, e.g. std=0.02")
    angles = 2.0 * np.pi * np.arange(8) / 8
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return _isotropic_mixture(means, std)


def grid_gaussians(n: int = 5, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture:
    r"""An $n \times n$ grid of equally weighted isotropic Gaussians centred at the origin,

    $$q = \frac{1}{n^2} \sum_{i, j = 0}^{n-1}
    \mathcal{N}\big(h\,(i - \tfrac{n-1}{2},\ j - \tfrac{n-1}{2}),\ s^2 I_2\big),$$

    with spacing $h$ and standard deviation $s$. The defaults ($5 \times 5$, $h = 2$,
    $s = 0.05$: means on $\{-4, -2, 0, 2, 4\}^2$) are the 25-Gaussian grid of VEEGAN
    (Srivastava et al. 2017, §5.1) and PacGAN (Lin et al. 2018, §5.1). Component
    $k = n i + j$ has mean index $(i, j)$.
    """
    n = check_int("n", n, 1, "points per side of the grid", example=5)
    check_positive("spacing", spacing, fix="pass the distance between neighbouring means")
    check_positive("std", std, fix="pass the component standard deviation, e.g. std=0.05")
    offsets = spacing * (np.arange(n) - (n - 1) / 2.0)
    gi, gj = np.meshgrid(offsets, offsets, indexing="ij")
    means = np.stack([gi.ravel(), gj.ravel()], axis=1)
    return _isotropic_mixture(means, std)


def two_moons(key: PRNGKeyArray, n: int, noise: float = 0.1) -> Float[Array, "n 2"]:
    r"""$n$ i.i.d. points of the two-moons law (the law behind scikit-learn's `make_moons`):
    pick a moon $b \sim \mathrm{Bernoulli}(\tfrac12)$ and an angle
    $\theta \sim \mathcal{U}[0, \pi]$, then

    $$x = \begin{cases} (\cos\theta,\ \sin\theta) & b = 0 \text{ (upper moon)},\\
    (1 - \cos\theta,\ \tfrac12 - \sin\theta) & b = 1 \text{ (lower moon)},\end{cases}
    \qquad + \ \text{noise}\cdot\varepsilon,\ \varepsilon \sim \mathcal{N}(0, I_2).$$

    Without noise the upper moon is the upper half of the unit circle about $(0, 0)$ and the
    lower moon the lower half of the unit circle about $(1, \tfrac12)$.
    """
    _check_n(n)
    check_positive("noise", noise, strict=False, fix="pass a noise standard deviation >= 0")
    k_moon, k_theta, k_eps = jr.split(key, 3)
    moon = jr.bernoulli(k_moon, 0.5, (n,))
    theta = jr.uniform(k_theta, (n,), minval=0.0, maxval=math.pi)
    upper = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
    lower = jnp.stack([1.0 - jnp.cos(theta), 0.5 - jnp.sin(theta)], axis=1)
    x = jnp.where(moon[:, None], lower, upper)
    return x + noise * jr.normal(k_eps, (n, 2), dtype=x.dtype)


def swiss_roll(
    key: PRNGKeyArray, n: int, noise: float = 1.0, scale: float = 0.2
) -> Float[Array, "n 2"]:
    r"""$n$ i.i.d. points of the 2-D swiss roll: with $t = \tfrac{3\pi}{2}(1 + 2u)$,
    $u \sim \mathcal{U}[0, 1]$ (so $t \in [\tfrac{3\pi}{2}, \tfrac{9\pi}{2}]$, scikit-learn's
    `make_swiss_roll` parameter),

    $$x = c\,\big[(t\cos t,\ t\sin t) + \text{noise}\cdot\varepsilon\big],
    \qquad \varepsilon \sim \mathcal{N}(0, I_2).$$

    The defaults (noise 1, scale $c = 1/5$) are FFJORD's `swissroll` toy (Grathwohl et al.
    2019, the first and third coordinates of `make_swiss_roll(noise=1.0)` divided by 5).
    Without noise every point lies on the Archimedean spiral $r = t$, angle $\equiv t$
    (mod $2\pi$), scaled by $c$.
    """
    _check_n(n)
    check_positive("noise", noise, strict=False, fix="pass a noise standard deviation >= 0")
    check_positive("scale", scale, fix="pass a positive scale, e.g. scale=0.2")
    k_t, k_eps = jr.split(key)
    t = 1.5 * math.pi * (1.0 + 2.0 * jr.uniform(k_t, (n,)))
    x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1)
    return scale * (x + noise * jr.normal(k_eps, (n, 2), dtype=x.dtype))


def checkerboard(
    key: PRNGKeyArray, n: int, n_squares: int = 4, side: float = 2.0
) -> Float[Array, "n 2"]:
    r"""$n$ i.i.d. points uniform on the black squares of a checkerboard.

    The board has `n_squares` × `n_squares` squares of side $a$ = `side`, centred at the
    origin: square $(i, j)$, $0 \le i, j < n_{\mathrm{sq}}$, is
    $[a(i - n_{\mathrm{sq}}/2),\ a(i + 1 - n_{\mathrm{sq}}/2)) \times
    [a(j - n_{\mathrm{sq}}/2),\ a(j + 1 - n_{\mathrm{sq}}/2))$ and is black when $i + j$ is
    even. A point picks a black square uniformly, then a uniform position in it. The
    defaults ($4 \times 4$ squares of side 2 on $[-4, 4]^2$, 8 black squares including the
    bottom-left one) are FFJORD's `checkerboard` toy (Grathwohl et al. 2019).
    """
    _check_n(n)
    n_squares = check_int("n_squares", n_squares, 1, "squares per side of the board", example=4)
    check_positive("side", side, fix="pass the side length of one square, e.g. side=2.0")
    ii, jj = np.meshgrid(np.arange(n_squares), np.arange(n_squares), indexing="ij")
    black = ((ii + jj) % 2 == 0).ravel()
    corners = np.stack([ii.ravel()[black], jj.ravel()[black]], axis=1) - n_squares / 2.0
    k_sq, k_u = jr.split(key)
    idx = jr.randint(k_sq, (n,), 0, corners.shape[0])
    u = jr.uniform(k_u, (n, 2))
    return side * (jnp.asarray(corners, dtype=u.dtype)[idx] + u)
