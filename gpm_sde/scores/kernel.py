r"""The mean-field kernel score: $\nabla\log$ of a Gaussian kernel density estimate of the cloud."""

from __future__ import annotations

import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_positive, is_concrete
from ..schedules import AbstractSchedule, Constant, Schedule, as_schedule
from .cloud import AbstractCloudScore

Bandwidth = Literal["scott", "silverman"] | float


def kde_bandwidth(y: Float[Array, " n *event"], rule: Literal["scott", "silverman"]) -> Array:
    r"""Rule-of-thumb bandwidth $h$ for a Gaussian KDE of the cloud `y` in $d$ dimensions, with
    $\hat\sigma$ the mean per-coordinate standard deviation:

    - Scott (1992, eq. 6.42): $h = \hat\sigma\, n^{-1/(d+4)}$;
    - Silverman (1986, eq. 4.14): $h = \hat\sigma\,\big(\tfrac{4}{d+2}\big)^{1/(d+4)} n^{-1/(d+4)}$.
    """
    n = y.shape[0]
    flat = y.reshape(n, -1)
    d = flat.shape[1]
    spread = jnp.mean(jnp.std(flat, axis=0, ddof=1))
    factor = n ** (-1.0 / (d + 4))
    if rule == "silverman":
        factor = factor * (4.0 / (d + 2)) ** (1.0 / (d + 4))
    elif rule != "scott":
        raise ValueError(f"`bandwidth` rule must be 'scott' or 'silverman', got {rule!r}.")
    return spread * factor


def _pad_rows(a: Array, multiple: int) -> Array:
    return jnp.pad(a, ((0, (-a.shape[0]) % multiple), (0, 0)))


def kernel_score_blocked(
    queries: Float[Array, "m d"], points: Float[Array, "n d"], h: Float[ArrayLike, ""], block: int
) -> Float[Array, "m d"]:
    r"""$\nabla\log\hat p(x)$ for $\hat p = \frac1n\sum_j \mathcal{N}(x_j, h^2 I)$ at every query:

    $$\nabla\log\hat p(x) = \frac{1}{h^2}\Big(\sum_j w_j(x)\, x_j - x\Big),\qquad
    w_j(x) = \operatorname{softmax}_j\Big(-\frac{\|x - x_j\|^2}{2h^2}\Big).$$

    Computed in `block × block` tiles with a running (online) log-sum-exp over the point
    blocks, as in memory-efficient attention (Rabe & Staats 2021): memory $O(\text{block}^2 +
    (m + n)d)$, never $O(mn)$.
    """
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"`block` must be an int >= 1 (the tile size), got {block!r}.")
    check_positive("h", h, fix="pass a kernel width h > 0")
    m, d = queries.shape
    pts = _pad_rows(points, block)
    valid = jnp.arange(pts.shape[0]) < points.shape[0]
    pts_blocks = pts.reshape(-1, block, d)
    valid_blocks = valid.reshape(-1, block)
    inv2h2 = 0.5 / h**2

    def one_query_block(q):
        def body(carry, blk):
            run_max, run_sum, run_vec = carry
            p, ok = blk
            sq = jnp.sum(q**2, 1)[:, None] + jnp.sum(p**2, 1)[None, :] - 2.0 * q @ p.T
            logits = jnp.where(ok[None, :], -jnp.maximum(sq, 0.0) * inv2h2, -jnp.inf)
            new_max = jnp.maximum(run_max, jnp.max(logits, axis=1))
            scale = jnp.exp(run_max - new_max)
            w = jnp.exp(logits - new_max[:, None])
            return (new_max, run_sum * scale + w.sum(1), run_vec * scale[:, None] + w @ p), None

        init = (
            jnp.full(q.shape[0], -jnp.inf, q.dtype),
            jnp.zeros(q.shape[0], q.dtype),
            jnp.zeros_like(q),
        )
        (_, total, weighted), _ = jax.lax.scan(body, init, (pts_blocks, valid_blocks))
        return (weighted / total[:, None] - q) / h**2

    q_pad = _pad_rows(queries, block)
    out = jax.lax.map(one_query_block, q_pad.reshape(-1, block, d))
    return out.reshape(-1, d)[:m]


class KernelScore(AbstractCloudScore):
    r"""Mean-field estimate of the cloud's own score: the score of the Gaussian kernel density
    estimate $\hat p_s = \frac1N\sum_j \mathcal{N}(y_j, h^2 I)$ at every particle,

    $$\nabla\log\hat p_s(y_i) = \frac{1}{h^2}\Big(\sum_j \operatorname{softmax}_j
    \Big(-\frac{\|y_i - y_j\|^2}{2h^2}\Big)\, y_j - y_i\Big).$$

    With a fixed $h = \sigma$ it is exactly $\nabla\log(\rho_s * k_\sigma)$, the smoothed
    generated score of the GPM Score-GAN field (Franceschi et al. 2023, §4.1). Memory is
    $O(N\cdot\text{block})$ (see `kernel_score_blocked`), so $N = 10^5$ particles run on a CPU.

    **Arguments:**

    - `bandwidth`: `"scott"`, `"silverman"` (recomputed from the cloud at every call) or a
      fixed float $h > 0$.
    - `block`: tile size of the blocked computation.
    """

    bandwidth: Bandwidth = eqx.field(static=True)
    block: int = eqx.field(static=True, default=256)

    def __check_init__(self):
        if isinstance(self.bandwidth, str):
            if self.bandwidth not in ("scott", "silverman"):
                raise ValueError(
                    f"`bandwidth` must be 'scott', 'silverman' or a float > 0, got "
                    f"{self.bandwidth!r}."
                )
        else:
            check_positive("bandwidth", self.bandwidth, fix="pass a kernel width h > 0")
        if isinstance(self.block, bool) or not isinstance(self.block, int) or self.block < 1:
            raise ValueError(f"`block` must be an int >= 1, got {self.block!r}.")

    def bandwidth_for(self, y: Float[Array, " n *event"]) -> Array:
        """The bandwidth $h$ used for the cloud `y`."""
        if isinstance(self.bandwidth, str):
            return kde_bandwidth(y, self.bandwidth)  # pyright: ignore[reportArgumentType]
        return jnp.asarray(self.bandwidth, dtype=y.dtype)

    def __call__(self, s, y):
        n = y.shape[0]
        flat = y.reshape(n, -1)
        h = self.bandwidth_for(y)
        block = min(self.block, max(1, 2 ** math.ceil(math.log2(n))))
        return kernel_score_blocked(flat, flat, h, block).reshape(y.shape)


class SmoothedCloudScore(AbstractCloudScore):
    r"""The score of the cloud smoothed at a scheduled noise level, at every particle:

    $$\nabla\log(\hat\rho_s * k_{\sigma(s)})(y_i),\qquad
    \hat\rho_s = \frac1N\sum_j\delta_{y_j},$$

    i.e. [`KernelScore`][gpm_sde.scores.KernelScore] with bandwidth $h = \sigma(s)$ taken from
    a schedule at call time (traced, so it can change inside a jitted loop). Paired with a
    real score of $q * k_{\sigma(s)}$ at the same $\sigma$, the two smoothed laws agree exactly
    when $\hat\rho_s = q$ (Franceschi et al. 2023, §4.1).

    **Arguments:**

    - `sigma`: the schedule $\sigma(s) > 0$ (a float or a callable of $s$).
    - `block`: tile size of the blocked computation.
    """

    sigma: AbstractSchedule
    block: int = eqx.field(static=True, default=256)

    def __init__(self, sigma: Schedule, block: int = 256):
        sched = as_schedule(sigma)
        if isinstance(sched, Constant) and is_concrete(sched.value):
            check_positive("sigma", sched.value, fix="pass a kernel width σ > 0")
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise ValueError(f"`block` must be an int >= 1, got {block!r}.")
        self.sigma = sched
        self.block = block

    def __call__(self, s, y):
        n = y.shape[0]
        flat = y.reshape(n, -1)
        h = jnp.asarray(self.sigma(s), dtype=y.dtype)
        block = min(self.block, max(1, 2 ** math.ceil(math.log2(n))))
        return kernel_score_blocked(flat, flat, h, block).reshape(y.shape)
