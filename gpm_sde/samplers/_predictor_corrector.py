r"""Predictor–corrector sampling (Song et al. 2021, Algorithms 1–5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import IntLike, check_callable, check_int, check_positive
from ..processes import AbstractLinearProcess
from ..scores import check_score, on_cloud
from ..sde import SDE, reverse
from ._common import check_process, generation_grid, start_cloud
from ._result import Samples

PREDICTORS = ("reverse_diffusion", "euler_maruyama")
ORDERS = ("corrector_first", "predictor_first")


def _mean_norm(v: Array) -> Array:
    """The norm of each point, averaged over the cloud (as in Song et al.'s code)."""
    return jnp.mean(jnp.linalg.norm(v.reshape(v.shape[0], -1), axis=1))


def predictor_corrector(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    key: PRNGKeyArray,
    n: IntLike | None = None,
    event_shape: Sequence[int] | None = None,
    *,
    steps: IntLike | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    x_init: Float[Array, " n *event"] | None = None,
    corrector_steps: IntLike = 1,
    snr: Float[ArrayLike, ""] = 0.16,
    predictor: str = "reverse_diffusion",
    order: str = "corrector_first",
    denoise: bool = True,
    eps: float | int | None = None,
) -> Samples:
    r"""Predictor–corrector sampling (Song et al. 2021, Algorithm 1; Algorithms 2–3 for VE and
    VP) on the diffusion-time grid $T \ge t_0 > t_1 > \dots > t_N = \epsilon$, $t_k = T - s_k$
    for the generation times $s_k$ (`steps` equal steps, or the grid `ts`). Each of the $N$
    steps is one **predictor** step $t_k \to t_{k+1}$ of the reverse SDE and $M$ =
    `corrector_steps` **Langevin corrector** steps, in one of two orders:

    - `order="corrector_first"` (default): the corrector at $t_k$, then the predictor
      $t_k \to t_{k+1}$. This is the order of `pc_sampler` in the authors' code
      (score_sde's `sampling.py`: `corrector_update_fn` then `predictor_update_fn` at each
      time), what a user of their code gets: it corrects the prior cloud at $t_0$ and ends
      with a predictor step.
    - `order="predictor_first"`: the predictor $t_k \to t_{k+1}$, then the corrector at
      $t_{k+1}$, as Algorithm 1 of the paper is written: it never corrects the prior cloud
      and ends with corrector steps at $\epsilon$.

    **Predictors.** Write the exact forward transition $t_{k+1} \to t_k$ of the linear process
    as $x_{t_k} = a_k x_{t_{k+1}} + G_k z$, $a_k = \alpha(t_k)/\alpha(t_{k+1})$,
    $G_k^2 = \sigma(t_k)^2 - a_k^2\sigma(t_{k+1})^2$.

    - `"reverse_diffusion"` (Song et al. 2021, appendix E, and Algorithms 2–3):
      $\bar x = (2 - a_k)\,x + G_k^2\,\nabla\log p_{t_k}(x)$, $x \leftarrow \bar x + G_k z$.
      For VE, $a_k = 1$ and $G_k^2 = \sigma_k^2 - \sigma_{k+1}^2$ (Algorithm 2); for VP,
      $a_k = \sqrt{1 - \beta_k}$ and $G_k^2 = \beta_k$ with $1 - \beta_k = \alpha(t_k)^2 /
      \alpha(t_{k+1})^2$ (Algorithm 3, the discretisation of Song et al. up to
      $O(\Delta t^2)$).
    - `"euler_maruyama"`: one Euler–Maruyama step of [`reverse`][gpm_sde.reverse]`(process,
      score)` in generation time $s = T - t_k$, step $\Delta s = t_k - t_{k+1}$: $\bar x = x
      + b(s, x)\Delta s$, $x \leftarrow \bar x + g\sqrt{\Delta s}\,z$.

    **Corrector** (Song et al. 2021, appendix G, Algorithms 4–5): at time $t$, with $g =
    \nabla\log p_{t}(x)$ and $z \sim \mathcal{N}(0, I)$,

    $$\varepsilon = 2\,\alpha_k \Big(\frac{r\,\overline{\|z\|}}{\overline{\|g\|}}\Big)^2,
    \qquad \bar x = x + \varepsilon g, \qquad x \leftarrow \bar x + \sqrt{2\varepsilon}\,z,$$

    the step set by the signal-to-noise ratio $r$ = `snr`, the norms per point averaged over the
    cloud (as in the authors' code). $\alpha_k = a_k^2$ of the predictor step $k$ that the
    corrector precedes (`corrector_first`) or follows (`predictor_first`): $1$ for VE
    (Algorithm 4) and $1 - \beta_k$ for VP (Algorithm 5). The corrector is Langevin dynamics of
    $p_t$, so it leaves that law invariant up to its step-size bias, which grows with $r^2$.

    **Denoising.** With `denoise=True` (the authors' `noise_removal`, on in all their
    configurations) the sampler returns the noise-free mean $\bar x$ of its last update
    instead of $x$: the last predictor step's for `corrector_first` (their `x_mean`), the last
    corrector step's for `predictor_first` with $M \ge 1$.

    **Grid.** The authors' loop visits $N$ times `linspace(T, eps, N)` and steps $1/N$ (or by
    their discrete DDPM/SMLD schedule) from each; here the $N$ steps join the $N + 1$ grid
    points, with the exact transition coefficients above, so the last step lands on
    $\epsilon$.

    A `lax.scan` over the $N$ steps; jittable with `steps`, `corrector_steps`, `predictor`,
    `order` and `denoise` static.

    **Arguments:**

    - `process`: the forward process; `score`: its score `score(t, x)` in diffusion time,
      pointwise on one point or a cloud score (called on the whole cloud).
    - `key`: split by `jax.random.split` into the prior draw (first) and the noise (second):
      step $k$ splits `fold_in(noise_key, k)` into the predictor's key and the corrector's,
      whose $j$-th step uses `fold_in(corrector_key, j)`.
    - `n`, `event_shape`: the number of points and the shape of one point (read from `x_init`
      when it is given).
    - `steps`: $N \ge 1$ equal steps on $s \in [0, T - \epsilon]$; or `ts`, an increasing grid
      of generation times (see [`time_grid`][gpm_sde.schedules.time_grid]).
    - `x_init`: a starting cloud `(n, *event)` at $t_0 = T - $ `ts[0]`, instead of a prior
      draw.
    - `corrector_steps`: $M \ge 0$ (`0` is the predictor alone).
    - `snr`: $r \ge 0$ (Song et al. use 0.16 for VE on CIFAR-10).
    - `predictor`: `"reverse_diffusion"` or `"euler_maruyama"`.
    - `order`: `"corrector_first"` or `"predictor_first"`.
    - `denoise`: return the last update's mean $\bar x$.
    - `eps`: the last time $\epsilon \in [0, T)$ (default `1e-3`; with `ts`, omit it).

    **Returns:** [`Samples`][gpm_sde.samplers.Samples] with `.x` the cloud `(n, *event)` at
    $t = \epsilon$.
    """
    check_process(process)
    check_callable("score", score, "(t, x) -> ∇log p_t(x)")
    check_int("corrector_steps", corrector_steps, 0, "Langevin steps per predictor step")
    check_positive("snr", snr, strict=False, fix="pass the signal-to-noise ratio, e.g. 0.16")
    if predictor not in PREDICTORS:
        raise ValueError(
            f"`predictor` must be one of {PREDICTORS} (Song et al. 2021, §4.2 and appendix F), "
            f"got {predictor!r}."
        )
    if order not in ORDERS:
        raise ValueError(
            f"`order` must be one of {ORDERS}: 'corrector_first' as score_sde's `pc_sampler`, "
            f"'predictor_first' as Algorithm 1 of Song et al. 2021; got {order!r}."
        )
    if not isinstance(denoise, bool):
        raise TypeError(f"`denoise` must be a bool, got {denoise!r}.")
    s_grid, _ = generation_grid(process, steps, ts, eps, x_init is not None)
    x0, k_noise = start_cloud(process.prior, key, n, event_shape, x_init, needs_noise=True)
    t_grid = process.T - s_grid
    label = "`score` of `predictor_corrector`"
    check_score(score, t_grid[0], x0, name=label)
    rev = reverse(process, score, label=label)
    x, x_mean = _pc_loop(
        process,
        score,
        rev,
        k_noise,
        x0,
        t_grid,
        jnp.asarray(snr, dtype=x0.dtype),
        predictor=predictor,
        order=order,
        n_corr=int(corrector_steps),
    )
    return Samples(x_mean if denoise else x)


@eqx.filter_jit
def _pc_loop(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    rev: SDE,
    k_noise: PRNGKeyArray,
    x0: Array,
    t_grid: Array,
    snr: Array,
    *,
    predictor: str,
    order: str,
    n_corr: int,
) -> tuple[Array, Array]:
    """The PC loop, compiled once per configuration: the final cloud and its last update's
    noise-free mean."""
    dtype = x0.dtype
    T = process.T

    def corrector(t, alpha_k, k_corr, x, x_mean):
        def one(j, carry):
            x, _ = carry
            g = on_cloud(score, t, x).astype(dtype)
            z = jr.normal(jr.fold_in(k_corr, j), x.shape, dtype=dtype)
            g_norm = _mean_norm(g)
            ratio = snr * _mean_norm(z) / jnp.where(g_norm > 0, g_norm, 1.0)
            step = jnp.where(g_norm > 0, 2.0 * alpha_k * ratio**2, 0.0)
            mean = x + step * g
            return mean + jnp.sqrt(2.0 * step) * z, mean

        return jax.lax.fori_loop(0, n_corr, one, (x, x_mean))

    def predict(t_cur, t_next, a, k_pred, x):
        z = jr.normal(k_pred, x.shape, dtype=dtype)
        if predictor == "reverse_diffusion":
            g2 = process.variance(t_cur) - a**2 * process.variance(t_next)
            g2 = jnp.maximum(g2, 0.0).astype(dtype)
            mean = (2.0 - a) * x + g2 * on_cloud(score, t_cur, x).astype(dtype)
            return mean + jnp.sqrt(g2) * z, mean
        s, ds = T - t_cur, t_cur - t_next
        assert rev.diffusion is not None
        mean = x + (rev.drift(s, x) * ds).astype(dtype)
        return mean + (rev.diffusion(s, x) * jnp.sqrt(ds)).astype(dtype) * z, mean

    def step(carry, k):
        x, x_mean = carry
        t_cur, t_next = t_grid[k], t_grid[k + 1]
        k_pred, k_corr = jr.split(jr.fold_in(k_noise, k))
        a = (process.alpha(t_cur) / process.alpha(t_next)).astype(dtype)
        if order == "corrector_first":
            x, x_mean = corrector(t_cur, a**2, k_corr, x, x_mean)
            x, x_mean = predict(t_cur, t_next, a, k_pred, x)
        else:
            x, x_mean = predict(t_cur, t_next, a, k_pred, x)
            x, x_mean = corrector(t_next, a**2, k_corr, x, x_mean)
        return (x, x_mean), None

    (x, x_mean), _ = jax.lax.scan(step, (x0, x0), jnp.arange(t_grid.shape[0] - 1))
    return x, x_mean
