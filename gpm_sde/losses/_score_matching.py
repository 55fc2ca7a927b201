r"""Denoising score matching (continuous time) and the DDPM noise-prediction loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import (
    check_batch,
    check_callable,
    check_finite,
    check_positive,
    is_concrete,
)
from ..processes import DDPM, EDM, AbstractLinearProcess
from ..schedules import AbstractSigmaLaw, LogNormalSigma
from ..scores import is_cloud_score

_WEIGHTINGS = ("std2", "likelihood", "edm", "denoiser")
_REDUCTIONS = ("mean", "none")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"`reduction` must be one of {_REDUCTIONS} (the batch mean, or one loss per point), "
            f"got {reduction!r}."
        )


def _per_point_sq_norm(r: Array) -> Array:
    return jnp.sum(jnp.reshape(r, (r.shape[0], -1)) ** 2, axis=1)


def _reduce(per_point: Array, reduction: str) -> Array:
    return jnp.mean(per_point) if reduction == "mean" else per_point


def _bcast(v: Array, x: Array) -> Array:
    return jnp.reshape(v, (-1,) + (1,) * (x.ndim - 1))


def _check_labels(labels: Any, x0: Array) -> Array:
    """`labels` as an array with one label (or conditioning vector) per point of `x0`."""
    lab = jnp.asarray(labels)
    if lab.ndim == 0 or lab.shape[0] != x0.shape[0]:
        raise ValueError(
            f"`labels` must hold one label per point of `x0`: an array with leading axis "
            f"{x0.shape[0]} (e.g. integer class indices of shape ({x0.shape[0]},)), got shape "
            f"{lab.shape}; pass the labels of this batch, or `labels=None` for an "
            f"unconditional model."
        )
    return lab


def _apply(fn: Callable[..., Any], t: Array, x: Array, labels: Array | None) -> Array:
    """`fn(t_i, x_i)` (or `fn(t_i, x_i, y_i)`) over the batch."""
    if labels is None:
        return jax.vmap(fn)(t, x)
    return jax.vmap(fn)(t, x, labels)


def dsm_loss(
    score_fn: Callable[..., Any],
    process: AbstractLinearProcess,
    x0: Float[Array, " n *event"],
    key: PRNGKeyArray,
    *,
    labels: ArrayLike | None = None,
    weighting: str = "std2",
    t_min: float = 1e-5,
    sigma_data: float = 0.5,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_law: AbstractSigmaLaw | None = None,
    reduction: str = "mean",
) -> Float[Array, ""] | Float[Array, " n"]:
    r"""Denoising score matching (Vincent 2011; Song et al. 2021, eq. 7):

    $$\mathcal{L}(\theta) = \mathbb{E}_{t}\,\lambda(t)\,\mathbb{E}_{x_0, \varepsilon}
    \Big\|s_\theta(t, x_t) + \frac{\varepsilon}{\sigma(t)}\Big\|^2,\qquad
    x_t = \alpha(t)x_0 + \sigma(t)\varepsilon,$$

    since $\nabla_{x_t}\log p_{0t}(x_t \mid x_0) = -\varepsilon/\sigma(t)$. Its minimiser over all
    functions is the marginal score $\nabla\log p_t$ (Vincent 2011, appendix), and at the
    minimum the loss equals the irreducible constant
    $\mathbb{E}_t\lambda(t)\,\mathbb{E}\big[d/\sigma(t)^2 - \|\nabla\log p_t(x_t)\|^2\big]$
    ($d$ the event size). The squared norm sums over all event axes.

    With `labels` $y_i$ (one per point) the score is conditional, $s_\theta(t, x_t, y)$, and
    the same argument point by point in $y$ makes the minimiser the conditional score
    $\nabla\log p_t(x\mid y)$ of the noised class $y$; with a fraction of labels replaced
    by a null label ([`drop_labels`][gpm_sde.losses.drop_labels]) one network learns the
    unconditional score at the null label too (Ho & Salimans 2022, algorithm 1).

    Weightings:

    - `"std2"`: $\lambda(t) = \sigma(t)^2$, $t \sim \mathcal{U}(t_{\min}, T)$ (Song et al.
      2021, §3.3), i.e. the loss $\mathbb{E}\|\sigma s_\theta + \varepsilon\|^2$.
    - `"likelihood"`: $\lambda(t) = g(t)^2$, $t \sim \mathcal{U}(t_{\min}, T)$ (Song et al.
      2021b, Theorem 1: $\tfrac{T}{2}\mathcal{L}$ is the score-matching part of their bound on
      $\mathrm{KL}(q\|p_\theta)$). Without their importance sampling of $t$ the estimator is
      heavy-tailed near $t = 0$, where $g^2/\sigma^2 \sim 1/t$ for VP: keep `t_min` away from 0.
    - `"edm"`: $\ln\sigma \sim \mathcal{N}(P_{\rm mean}, P_{\rm std}^2)$ and
      $\lambda(\sigma) = (\sigma^2 + \sigma_d^2)/(\sigma\sigma_d)^2$ applied to the denoiser
      error (Karras et al. 2022, eq. 8 and Table 1): with $D = x + \sigma^2 s_\theta$,
      $\lambda(\sigma)\|D(x_\sigma;\sigma) - x_0\|^2 = \lambda(\sigma)\sigma^4\|s_\theta +
      \varepsilon/\sigma\|^2$. Needs the EDM process ([`edm`][gpm_sde.edm], $\alpha = 1$,
      $\sigma(t) = t$), so the score is called at $t = \sigma$; pass an
      [`EDMDenoiser`][gpm_sde.nn.EDMDenoiser] to train Karras's preconditioned network.
    - `"denoiser"`: the plain denoiser error $\|D(x_\sigma;\sigma) - x_0\|^2 =
      \sigma^4\|s_\theta + \varepsilon/\sigma\|^2$ (no $\lambda$), $\sigma$ drawn from
      `sigma_law`: the generated-score loss of the GPM authors' Score GAN (Franceschi et al.
      2023, `ScoreGAN.forward_score_noise`, with
      [`KarrasSigma`][gpm_sde.schedules.KarrasSigma]). Needs the EDM process too.

    **Arguments:**

    - `score_fn`: the pointwise score `score_fn(t, x)` on one point (vmapped over the batch),
      e.g. a parameterisation wrapper from `gpm_sde.nn`; with `labels`, the conditional score
      `score_fn(t, x, y)`, e.g. `EpsilonParam(ScoreMLP(..., num_classes=K), process.sigma)`.
    - `process`: the forward process.
    - `x0`: a batch of data `(n, *event)`.
    - `key`: PRNG key for the times (or noise levels) and the noise; one of each per point.
    - `labels`: `None` (an unconditional score), or the labels of the batch, an array with
      leading axis `n` (integer classes `(n,)`, or conditioning vectors `(n, k)`).
    - `weighting`: `"std2"`, `"likelihood"` or `"edm"`.
    - `t_min`: the smallest time for the uniform weightings.
    - `sigma_data`, `p_mean`, `p_std`: $\sigma_d$, $P_{\rm mean}$, $P_{\rm std}$ of the EDM
      weighting (Karras et al. 2022: 0.5, −1.2, 1.2).
    - `sigma_law`: the law of $\sigma$ for `"edm"` and `"denoiser"`
      ([`AbstractSigmaLaw`][gpm_sde.schedules.AbstractSigmaLaw]; default
      `LogNormalSigma(p_mean, p_std)`).
    - `reduction`: `"mean"` for the batch mean (a scalar), `"none"` for one loss per point.
    """
    if not isinstance(process, AbstractLinearProcess):
        raise TypeError(
            f"`process` must be a linear forward process such as `gpm_sde.vp()`, got "
            f"{type(process).__name__}; for the DDPM chain use `ddpm_eps_loss`."
        )
    check_callable("score_fn", score_fn, "(t, x) -> score on one point")
    if is_cloud_score(score_fn):
        raise TypeError(
            f"`score_fn` must be a pointwise score `(t, x)` on one point (every point has its "
            f"own time), got the cloud score {type(score_fn).__name__}, which is called on a "
            f"whole cloud at one time; train a network, e.g. `gpm_sde.nn.ScoreParam(net)`."
        )
    if weighting not in _WEIGHTINGS:
        raise ValueError(
            f"`weighting` must be one of {_WEIGHTINGS} (λ = σ², λ = g², the EDM weighting or "
            f"the plain denoiser error), got {weighting!r}."
        )
    _check_reduction(reduction)
    check_batch("x0", x0, min_ndim=2)
    check_finite("x0", x0, "remove or impute non-finite data")
    lab = None if labels is None else _check_labels(labels, x0)
    k_t, k_eps = jr.split(key)
    n, dtype = x0.shape[0], x0.dtype
    if sigma_law is not None and not isinstance(sigma_law, AbstractSigmaLaw):
        raise TypeError(
            f"`sigma_law` must be a law of noise levels such as "
            f"`gpm_sde.schedules.KarrasSigma(0.1, 10.0, 3.0)`, got {type(sigma_law).__name__}."
        )
    if weighting in ("edm", "denoiser"):
        if not isinstance(process, EDM):
            raise TypeError(
                f"`weighting={weighting!r}` draws the noise level σ and calls the score at "
                f"t = σ, which needs the EDM process (α = 1, σ(t) = t), got "
                f"{type(process).__name__}; pass `process=gpm_sde.edm()`, or use "
                f"weighting='std2' with this process."
            )
        check_positive("sigma_data", sigma_data, fix="pass e.g. sigma_data=0.5")
        law = LogNormalSigma(p_mean, p_std) if sigma_law is None else sigma_law
        t = law.sample(k_t, (n,), dtype)
        alpha, sigma = jnp.ones_like(t), t
        if weighting == "edm":
            sd2 = jnp.asarray(sigma_data, dtype=dtype) ** 2
            weight = (sigma**2 + sd2) / sd2  # λ(σ)σ⁴ / σ²
        else:
            weight = sigma**2  # ‖D − x₀‖² = σ²‖σ s + ε‖²
    elif sigma_law is not None:
        raise ValueError(
            f"`sigma_law` is used by weighting='edm' or 'denoiser' only, got "
            f"weighting={weighting!r}; drop sigma_law or pick one of those weightings."
        )
    else:
        check_positive("t_min", t_min, fix="pass a small positive time, e.g. t_min=1e-5")
        if is_concrete(t_min) and not float(t_min) < process.T:
            raise ValueError(
                f"`t_min` must be below the time horizon T = {process.T}, got {t_min!r}; "
                f"pass e.g. t_min=1e-5."
            )
        t = jr.uniform(k_t, (n,), dtype=dtype, minval=t_min, maxval=process.T)
        alpha, sigma = process.alpha(t), process.sigma(t)
        if weighting == "std2":
            weight = jnp.ones_like(t)
        else:
            weight = process.diffusion_squared(t) / sigma**2
    eps = jr.normal(k_eps, x0.shape, dtype=dtype)
    xt = _bcast(alpha, x0) * x0 + _bcast(sigma, x0) * eps
    score = _apply(score_fn, t, xt, lab)
    per_point = weight * _per_point_sq_norm(_bcast(sigma, x0) * score + eps)
    return _reduce(per_point, reduction)


def ddpm_eps_loss(
    eps_model: Callable[..., Any],
    ddpm: DDPM,
    x0: Float[Array, " n *event"],
    key: PRNGKeyArray,
    *,
    labels: ArrayLike | None = None,
    reduction: str = "mean",
) -> Float[Array, ""] | Float[Array, " n"]:
    r"""The simplified DDPM loss (Ho et al. 2020, eq. 14 and Algorithm 1):

    $$L_{\rm simple}(\theta) = \mathbb{E}_{n, x_0, \varepsilon}\big\|\varepsilon
    - \varepsilon_\theta\big(n,\ \sqrt{\bar\alpha_n}\,x_0 + \sqrt{1 - \bar\alpha_n}\,
    \varepsilon\big)\big\|^2,\qquad n \sim \mathcal{U}\{1, \dots, N\}.$$

    Its minimiser is $\varepsilon^*(n, x) = \mathbb{E}[\varepsilon \mid x_n = x] =
    -\sqrt{1 - \bar\alpha_n}\,\nabla\log q_n(x)$
    ([`DDPM.eps_from_score`][gpm_sde.processes.DDPM.eps_from_score]). The squared norm
    sums over all event axes. With `labels` the predictor is conditional,
    $\varepsilon_\theta(n, x, y)$, and its minimiser $\mathbb{E}[\varepsilon \mid x_n = x, y]$
    (classifier-free training, Ho & Salimans 2022, algorithm 1, with
    [`drop_labels`][gpm_sde.losses.drop_labels]).

    **Arguments:**

    - `eps_model`: the noise predictor `eps_model(n, x)` on one point, `n` an integer step
      (1-based, as in the paper), vmapped over the batch; with `labels`, `eps_model(n, x, y)`.
    - `ddpm`: the chain ([`ddpm`][gpm_sde.ddpm]).
    - `x0`: a batch of data `(n, *event)`.
    - `key`: PRNG key for the steps and the noise.
    - `labels`: `None`, or the labels of the batch, an array with leading axis `n`.
    - `reduction`: `"mean"` for the batch mean, `"none"` for one loss per point.
    """
    if not isinstance(ddpm, DDPM):
        raise TypeError(
            f"`ddpm` must be a DDPM chain such as `gpm_sde.ddpm(1000)`, got "
            f"{type(ddpm).__name__}; for a continuous process use `dsm_loss`."
        )
    check_callable("eps_model", eps_model, "(n, x) -> ε̂ on one point")
    _check_reduction(reduction)
    check_batch("x0", x0, min_ndim=2)
    check_finite("x0", x0, "remove or impute non-finite data")
    lab = None if labels is None else _check_labels(labels, x0)
    k_n, k_eps = jr.split(key)
    steps = jr.randint(k_n, (x0.shape[0],), 1, ddpm.n_steps + 1)
    alpha_bar = ddpm.alpha_bar(steps).astype(x0.dtype)
    one_minus = ddpm.one_minus_alpha_bar(steps).astype(x0.dtype)
    eps = jr.normal(k_eps, x0.shape, dtype=x0.dtype)
    xn = _bcast(jnp.sqrt(alpha_bar), x0) * x0 + _bcast(jnp.sqrt(one_minus), x0) * eps
    eps_hat = _apply(eps_model, steps, xn, lab)
    return _reduce(_per_point_sq_norm(eps - eps_hat), reduction)
