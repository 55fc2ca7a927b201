r"""Predictor–corrector sampling (Song et al. 2021, Algorithms 1–5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import check_positive
from ..processes import AbstractLinearProcess
from ..scores import check_score, on_cloud
from ..sde import reverse
from ._common import check_callable, check_cloud, check_end_time, check_int, check_process

PREDICTORS = ("reverse_diffusion", "euler_maruyama")


def _mean_norm(v: Array) -> Array:
    """The norm of each point, averaged over the cloud (as in Song et al.'s code)."""
    return jnp.mean(jnp.linalg.norm(v.reshape(v.shape[0], -1), axis=1))


def predictor_corrector(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    key: PRNGKeyArray,
    x_T: Float[Array, " n *event"],
    *,
    steps: int,
    corrector_steps: int = 1,
    snr: Float[ArrayLike, ""] = 0.16,
    predictor: str = "reverse_diffusion",
    eps: float | int = 1e-3,
) -> Float[Array, " n *event"]:
    r"""Predictor–corrector sampling (Song et al. 2021, Algorithm 1; Algorithms 2–3 for VE and
    VP): on the grid $T = t_0 > t_1 > \dots > t_N = \epsilon$ ($N$ = `steps`, uniform), each
    step is one **predictor** step $t_k \to t_{k+1}$ of the reverse SDE, then $M$ =
    `corrector_steps` **Langevin corrector** steps at $t_{k+1}$.

    **Predictors.** Write the exact forward transition $t_{k+1} \to t_k$ of the linear process
    as $x_{t_k} = a_k x_{t_{k+1}} + G_k z$, $a_k = \alpha(t_k)/\alpha(t_{k+1})$,
    $G_k^2 = \sigma(t_k)^2 - a_k^2\sigma(t_{k+1})^2$.

    - `"reverse_diffusion"` (Song et al. 2021, appendix E, and Algorithms 2–3):
      $x \leftarrow (2 - a_k)\,x + G_k^2\,\nabla\log p_{t_k}(x) + G_k z$. For VE, $a_k = 1$ and
      $G_k^2 = \sigma_k^2 - \sigma_{k+1}^2$ (Algorithm 2); for VP, $a_k = \sqrt{1 - \beta_k}$
      and $G_k^2 = \beta_k$ with $1 - \beta_k = \alpha(t_k)^2/\alpha(t_{k+1})^2$
      (Algorithm 3, the discretisation of Song et al. up to $O(\Delta t^2)$).
    - `"euler_maruyama"`: one Euler–Maruyama step of [`reverse`][gpm_sde.reverse]`(process,
      score)` in generation time $s = T - t_k$, step $\Delta s = t_k - t_{k+1}$.

    **Corrector** (Song et al. 2021, appendix G, Algorithms 4–5): with $g = \nabla\log
    p_{t_{k+1}}(x)$ and $z \sim \mathcal{N}(0, I)$,

    $$\varepsilon = 2\,\alpha_k \Big(\frac{r\,\overline{\|z\|}}{\overline{\|g\|}}\Big)^2,
    \qquad x \leftarrow x + \varepsilon g + \sqrt{2\varepsilon}\,z,$$

    the step set by the signal-to-noise ratio $r$ = `snr`, the norms per point averaged over the
    cloud (as in the authors' code). $\alpha_k = a_k^2$: $1$ for VE (Algorithm 4) and
    $1 - \beta_k$ for VP (Algorithm 5). The corrector is Langevin dynamics of $p_{t_{k+1}}$, so
    it leaves that law invariant up to its step-size bias, which grows with $r^2$.

    A `lax.scan` over the $N$ steps; jittable with `steps`, `corrector_steps` and `predictor`
    static.

    **Arguments:**

    - `process`: the forward process; `score`: its score `score(t, x)` in diffusion time,
      pointwise on one point or a cloud score (called on the whole cloud).
    - `key`: PRNG key; step $k$ splits `jax.random.fold_in(key, k)` into the predictor's key
      and the corrector's, whose $j$-th step uses `fold_in(corrector_key, j)`.
    - `x_T`: the initial cloud `(n, *event)`, drawn from `process.prior`.
    - `steps`: $N \ge 1$; `corrector_steps`: $M \ge 0$ (`0` is the predictor alone).
    - `snr`: $r \ge 0$ (Song et al. use 0.16 for VE on CIFAR-10).
    - `predictor`: `"reverse_diffusion"` or `"euler_maruyama"`.
    - `eps`: the last time $\epsilon \in [0, T)$.

    **Returns:** the final cloud `(n, *event)` at $t = \epsilon$.
    """
    check_process(process)
    check_callable("score", score, "(t, x) -> ∇log p_t(x)")
    check_cloud("x_T", x_T)
    check_int("steps", steps, 1, "the number of predictor steps")
    check_int("corrector_steps", corrector_steps, 0, "Langevin steps after each predictor step")
    check_positive("snr", snr, strict=False, fix="pass the signal-to-noise ratio, e.g. 0.16")
    check_end_time(process, eps)
    if predictor not in PREDICTORS:
        raise ValueError(
            f"`predictor` must be one of {PREDICTORS} (Song et al. 2021, §4.2 and appendix F), "
            f"got {predictor!r}."
        )
    dtype = x_T.dtype
    T = process.T
    ts = jnp.linspace(T, float(eps), steps + 1, dtype=dtype)
    check_score(score, ts[0], x_T, name="`score` of `predictor_corrector`")
    rev = reverse(process, score, label="`score` of `predictor_corrector`")
    snr_arr = jnp.asarray(snr, dtype=dtype)

    def corrector(t, alpha_k, k_corr, x):
        def one(j, x):
            g = on_cloud(score, t, x)
            z = jr.normal(jr.fold_in(k_corr, j), x.shape, dtype=dtype)
            g_norm = _mean_norm(g)
            ratio = snr_arr * _mean_norm(z) / jnp.where(g_norm > 0, g_norm, 1.0)
            step = jnp.where(g_norm > 0, 2.0 * alpha_k * ratio**2, 0.0)
            return x + step * g + jnp.sqrt(2.0 * step) * z

        return jax.lax.fori_loop(0, corrector_steps, one, x)

    def step(x, k):
        t_cur, t_next = ts[k], ts[k + 1]
        k_pred, k_corr = jr.split(jr.fold_in(key, k))
        z = jr.normal(k_pred, x.shape, dtype=dtype)
        a = (process.alpha(t_cur) / process.alpha(t_next)).astype(dtype)
        if predictor == "reverse_diffusion":
            g2 = process.variance(t_cur) - a**2 * process.variance(t_next)
            g2 = jnp.maximum(g2, 0.0).astype(dtype)
            x = (2.0 - a) * x + g2 * on_cloud(score, t_cur, x) + jnp.sqrt(g2) * z
        else:
            s, ds = T - t_cur, t_cur - t_next
            assert rev.diffusion is not None
            x = x + rev.drift(s, x) * ds + rev.diffusion(s, x) * jnp.sqrt(ds) * z
        x = corrector(t_next, a**2, k_corr, x)
        return x, None

    x, _ = jax.lax.scan(step, x_T, jnp.arange(steps))
    return x
