r"""Score parameterisations: wrappers that turn a raw network output into a score.

For a linear forward process $x_t = \alpha(t)x_0 + \sigma(t)\varepsilon$, Tweedie's formula
links the three targets a network may learn (Song et al. 2021, eq. 7; Kingma et al. 2021,
appendix; Karras et al. 2022, eq. 3):

$$\nabla\log p_t(x) = -\frac{\mathbb{E}[\varepsilon \mid x_t = x]}{\sigma(t)}
= \frac{\alpha(t)\,\mathbb{E}[x_0 \mid x_t = x] - x}{\sigma(t)^2}.$$

Each wrapper here is itself a pointwise score `(t, x) -> ∇log p_t(x)` in diffusion time, so it
plugs into [`reverse`][gpm_sde.reverse], [`probability_flow`][gpm_sde.probability_flow] and
`gpm_sde.losses.dsm_loss` directly. $\alpha$ and $\sigma$ are given as callables of $t$
(typically the bound methods `process.alpha`, `process.sigma` of a forward process) or as
constants.

**Conditional networks.** Every wrapper passes an optional label through: called as
`wrapper(t, x, y)` it calls the class-conditional network as `net(t, x, y)` (e.g. a
[`ScoreMLP`][gpm_sde.nn.ScoreMLP] or [`UNet8`][gpm_sde.nn.UNet8] built with `num_classes=K`)
and applies the same formula, giving the conditional score $\nabla\log p_t(x\mid y)$;
`wrapper(t, x)` calls `net(t, x)` exactly as an unconditional wrapper does.
[`bind_label(wrapper, y)`][gpm_sde.scores.bind_label] is then the pointwise score
`(t, x) -> ∇log p_t(x | y)` (the null label `K` gives the unconditional score of
classifier-free training), and [`fit_score`][gpm_sde.train.fit_score] with `labels=` trains it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, Real

from .._checks import check_callable, check_positive

#: A coefficient of time: a callable `t -> value` (e.g. `process.sigma`) or a constant.
Coefficient = Callable[..., Any] | float


def _at(coefficient: Any, t: Any, like: Array) -> Array:
    value = coefficient(t) if callable(coefficient) else coefficient
    return jnp.asarray(value, dtype=jnp.result_type(like.dtype, float))


def _net(net: Callable[..., Any], t: Any, x: Array, y: Any) -> Array:
    """`net(t, x)`, or `net(t, x, y)` for a conditional network given a label."""
    return net(t, x) if y is None else net(t, x, y)


def _check_coefficient(name: str, value: Any, example: str) -> None:
    if callable(value):
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"`{name}` must be a callable of time or a constant float, got "
            f"{type(value).__name__}; pass e.g. `{name}={example}`."
        )
    check_positive(name, value, fix=f"pass e.g. `{name}={example}`")


class ScoreParam(eqx.Module):
    r"""The identity parameterisation: the network output is the score,
    $s_\theta(t, x) = F_\theta(t, x)$ (Song et al. 2021, eq. 7).

    **Arguments:**

    - `net`: the network, `net(t, x)` on one point.
    """

    net: Callable[..., Any]

    def __check_init__(self):
        check_callable("net", self.net, "net(t, x) on one point")

    def __call__(
        self,
        t: Real[ArrayLike, ""],
        x: Float[Array, "*event"],
        y: Int[ArrayLike, ""] | Array | None = None,
    ) -> Float[Array, "*event"]:
        return _net(self.net, t, x, y)


class EpsilonParam(eqx.Module):
    r"""The noise-prediction parameterisation of DDPM (Ho et al. 2020, eq. 11–12; Song et al.
    2021, appendix): the network predicts $\hat\varepsilon_\theta(t, x) \approx
    \mathbb{E}[\varepsilon \mid x_t = x]$, and

    $$s_\theta(t, x) = -\frac{\hat\varepsilon_\theta(t, x)}{\sigma(t)}.$$

    **Arguments:**

    - `net`: the noise predictor, `net(t, x)` on one point.
    - `sigma`: $\sigma(t)$, a callable (e.g. `process.sigma`) or a constant.
    """

    net: Callable[..., Any]
    sigma: Coefficient

    def __check_init__(self):
        check_callable("net", self.net, "net(t, x) on one point")
        _check_coefficient("sigma", self.sigma, "process.sigma")

    def __call__(
        self,
        t: Real[ArrayLike, ""],
        x: Float[Array, "*event"],
        y: Int[ArrayLike, ""] | Array | None = None,
    ) -> Float[Array, "*event"]:
        return -_net(self.net, t, x, y) / _at(self.sigma, t, x)


class X0Param(eqx.Module):
    r"""The data-prediction parameterisation (Kingma et al. 2021, appendix; Karras et al. 2022,
    eq. 3): the network predicts $\hat x_{0,\theta}(t, x) \approx \mathbb{E}[x_0 \mid x_t = x]$,
    and by Tweedie's formula

    $$s_\theta(t, x) = \frac{\alpha(t)\,\hat x_{0,\theta}(t, x) - x}{\sigma(t)^2}.$$

    **Arguments:**

    - `net`: the data predictor, `net(t, x)` on one point.
    - `alpha`, `sigma`: $\alpha(t)$ and $\sigma(t)$, callables (e.g. `process.alpha`,
      `process.sigma`) or constants.
    """

    net: Callable[..., Any]
    alpha: Coefficient
    sigma: Coefficient

    def __check_init__(self):
        check_callable("net", self.net, "net(t, x) on one point")
        _check_coefficient("alpha", self.alpha, "process.alpha")
        _check_coefficient("sigma", self.sigma, "process.sigma")

    def __call__(
        self,
        t: Real[ArrayLike, ""],
        x: Float[Array, "*event"],
        y: Int[ArrayLike, ""] | Array | None = None,
    ) -> Float[Array, "*event"]:
        alpha, sigma = _at(self.alpha, t, x), _at(self.sigma, t, x)
        return (alpha * _net(self.net, t, x, y) - x) / sigma**2


def edm_preconditioning(
    sigma: Float[ArrayLike, "*s"], sigma_data: Float[ArrayLike, ""] = 0.5
) -> tuple[Float[Array, "*s"], Float[Array, "*s"], Float[Array, "*s"], Float[Array, "*s"]]:
    r"""The preconditioning of Karras et al. 2022 (Table 1, "ours"; appendix B.6):

    $$c_{\rm skip} = \frac{\sigma_d^2}{\sigma^2 + \sigma_d^2},\quad
    c_{\rm out} = \frac{\sigma\,\sigma_d}{\sqrt{\sigma^2 + \sigma_d^2}},\quad
    c_{\rm in} = \frac{1}{\sqrt{\sigma^2 + \sigma_d^2}},\quad
    c_{\rm noise} = \tfrac14\ln\sigma .$$

    $c_{\rm in}$ gives the network input unit variance, and $c_{\rm skip}$, $c_{\rm out}$ give
    its training target $(x_0 - c_{\rm skip}x)/c_{\rm out}$ unit variance for data of
    variance $\sigma_d^2$ (Karras et al. 2022, appendix B.6).

    Returns `(c_skip, c_out, c_in, c_noise)`, elementwise in `sigma`.
    """
    sigma = jnp.asarray(sigma, dtype=jnp.result_type(float, sigma))
    sd2 = jnp.asarray(sigma_data, dtype=sigma.dtype) ** 2
    total = sigma**2 + sd2
    c_skip = sd2 / total
    c_out = sigma * jnp.sqrt(sd2) / jnp.sqrt(total)
    c_in = 1.0 / jnp.sqrt(total)
    c_noise = 0.25 * jnp.log(sigma)
    return c_skip, c_out, c_in, c_noise


class EDMDenoiser(eqx.Module):
    r"""The EDM denoiser with the preconditioning of Karras et al. 2022 (eq. 7 and Table 1),

    $$D_\theta(\hat x; \hat\sigma) = c_{\rm skip}(\hat\sigma)\,\hat x
    + c_{\rm out}(\hat\sigma)\,F_\theta\big(c_{\rm noise}(\hat\sigma),\ c_{\rm in}(\hat\sigma)
    \,\hat x\big),$$

    with the coefficients of [`edm_preconditioning`][gpm_sde.nn.edm_preconditioning], used as
    a score

    $$s_\theta(t, x) = \frac{\alpha(t)\,D_\theta\big(x/\alpha(t);\ \sigma(t)/\alpha(t)\big)
    - x}{\sigma(t)^2}.$$

    For the EDM process ($\alpha = 1$, $\sigma(t) = t$, [`edm`][gpm_sde.edm]; the defaults)
    this is $s = (D(x;\sigma) - x)/\sigma^2$ (Karras et al. 2022, eq. 3). For a scaled process
    (VP, ...) $x/\alpha = x_0 + (\sigma/\alpha)\varepsilon$ is the data plus noise of level
    $\hat\sigma = \sigma/\alpha$, the scaling $s(t) = \alpha(t)$ of Karras et al. 2022, eq. 4.

    **Arguments:**

    - `net`: the raw network $F_\theta$, called as `net(c_noise, c_in * x_hat)` on one point
      (its "time" input is $c_{\rm noise} = \tfrac14\ln\hat\sigma$).
    - `sigma_data`: $\sigma_d$, the data standard deviation (0.5 in Karras et al. 2022).
    - `alpha`: $\alpha(t)$, a callable or a constant (default 1).
    - `sigma`: $\sigma(t)$, a callable or a constant; `None` (default) means $\sigma(t) = t$,
      the EDM process.
    """

    net: Callable[..., Any]
    sigma_data: float = 0.5
    alpha: Coefficient = 1.0
    sigma: Coefficient | None = None

    def __check_init__(self):
        check_callable("net", self.net, "net(c_noise, x) on one point")
        check_positive("sigma_data", self.sigma_data, fix="pass e.g. sigma_data=0.5")
        _check_coefficient("alpha", self.alpha, "process.alpha")
        if self.sigma is not None:
            _check_coefficient("sigma", self.sigma, "process.sigma")

    def _alpha_sigma(self, t: Any, x: Array) -> tuple[Array, Array]:
        alpha = _at(self.alpha, t, x)
        sigma = _at(self.sigma if self.sigma is not None else (lambda u: u), t, x)
        return alpha, sigma

    def denoise(
        self,
        t: Real[ArrayLike, ""],
        x: Float[Array, "*event"],
        y: Int[ArrayLike, ""] | Array | None = None,
    ) -> Float[Array, "*event"]:
        r"""$D_\theta(x/\alpha; \sigma/\alpha)$, the estimate of $\mathbb{E}[x_0 \mid x_t =
        x]$ (of $\mathbb{E}[x_0 \mid x_t = x, y]$ given a label `y`)."""
        alpha, sigma = self._alpha_sigma(t, x)
        x_hat = x / alpha
        c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma / alpha, self.sigma_data)
        return c_skip * x_hat + c_out * _net(self.net, c_noise, c_in * x_hat, y)

    def __call__(
        self,
        t: Real[ArrayLike, ""],
        x: Float[Array, "*event"],
        y: Int[ArrayLike, ""] | Array | None = None,
    ) -> Float[Array, "*event"]:
        alpha, sigma = self._alpha_sigma(t, x)
        return (alpha * self.denoise(t, x, y) - x) / sigma**2
