r"""Laws of the noise level $\sigma$ at which denoisers and Score-GAN fields are trained: EDM's
training law (log-normal) and its inference grid made continuous (the Karras $\rho$-ramp at a
uniform random position)."""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_finite, check_positive


class AbstractSigmaLaw(eqx.Module):
    r"""A law of noise levels $\sigma > 0$: `law.sample(key, shape, dtype)` draws i.i.d.
    levels of that shape."""

    @abc.abstractmethod
    def sample(
        self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: jnp.dtype | type = float
    ) -> Float[Array, "..."]:
        """I.i.d. noise levels of the given shape and float dtype."""


class LogNormalSigma(AbstractSigmaLaw):
    r"""EDM's training law $\ln\sigma \sim \mathcal{N}(P_{\rm mean}, P_{\rm std}^2)$ (Karras
    et al. 2022, Table 1: $P_{\rm mean} = -1.2$, $P_{\rm std} = 1.2$), clipped above at
    `sigma_max` if given: $\sigma = \min(e^{P_{\rm mean} + P_{\rm std}\xi}, \sigma_{\max})$."""

    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_max: float | None = None

    def __check_init__(self) -> None:
        check_finite("p_mean", self.p_mean)
        check_positive("p_std", self.p_std, fix="pass e.g. p_std=1.2")
        if self.sigma_max is not None:
            check_positive("sigma_max", self.sigma_max, fix="pass e.g. sigma_max=80.0 or None")

    def sample(
        self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: jnp.dtype | type = float
    ) -> Float[Array, "..."]:
        sigma = jnp.exp(self.p_mean + self.p_std * jr.normal(key, shape, dtype=dtype))
        return sigma if self.sigma_max is None else jnp.minimum(sigma, self.sigma_max)


class KarrasSigma(AbstractSigmaLaw):
    r"""EDM's inference noise grid (Karras et al. 2022, eq. 5) at a uniform random position,
    the law of the Score-GAN noise levels in the GPM authors' code (Franceschi et al. 2023,
    `ScoreGAN.sample_noise_level`):

    $$\sigma = \Big(\sigma_{\max}^{1/\rho} + u\,\big(\sigma_{\min}^{1/\rho} -
    \sigma_{\max}^{1/\rho}\big)\Big)^{\rho},\qquad u \sim \mathcal{U}(0, 1),$$

    so $\sigma \in [\sigma_{\min}, \sigma_{\max}]$, denser near $\sigma_{\min}$ as $\rho$ grows.
    Their 2-D and MNIST settings use $\sigma_{\min} = 0.1$, $\sigma_{\max} = 10$, $\rho = 3$.
    """

    sigma_min: float = 0.1
    sigma_max: float = 10.0
    rho: float = 3.0

    def __check_init__(self) -> None:
        check_positive("sigma_min", self.sigma_min, fix="pass e.g. sigma_min=0.1")
        check_positive("rho", self.rho, fix="pass e.g. rho=3.0")
        check_finite("sigma_max", self.sigma_max)
        if not self.sigma_max > self.sigma_min:
            raise ValueError(
                f"`sigma_max` must be greater than `sigma_min`, got sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}."
            )

    def sample(
        self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: jnp.dtype | type = float
    ) -> Float[Array, "..."]:
        u = jr.uniform(key, shape, dtype=dtype)
        hi, lo = self.sigma_max ** (1.0 / self.rho), self.sigma_min ** (1.0 / self.rho)
        return (hi + u * (lo - hi)) ** self.rho
