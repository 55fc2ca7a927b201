r"""Linear forward (noising) processes, fixed by their marginal
$x_t = \alpha(t)x_0 + \sigma(t)\varepsilon$."""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import check_time_range, is_concrete
from ..distributions import GaussianMixture, IsotropicNormal


def _time_derivative(fn, t: Array) -> Array:
    """$d/dt$ of an elementwise function of time, by forward-mode autodiff."""
    t = jnp.asarray(t, dtype=jnp.result_type(float, t))
    return jax.jvp(fn, (t,), (jnp.ones_like(t),))[1]


class AbstractLinearProcess(eqx.Module):
    r"""A linear forward process on $t \in [0, T]$, data at $t = 0$, defined by its marginal

    $$x_t = \alpha(t)\, x_0 + \sigma(t)\, \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I).$$

    Its SDE $dx = f(t)\,x\,dt + g(t)\,dW$ follows by differentiation (Song et al.
    2021, appendix B; Kingma et al. 2021, eq. 2–5):

    $$f = \frac{\alpha'}{\alpha} = (\log\alpha)', \qquad g^2 = (\sigma^2)' - 2 f \sigma^2
    = 2\sigma\sigma' - 2f\sigma^2 .$$

    A concrete process implements `alpha(t)`, `variance(t)` $=\sigma(t)^2$ and the field `T`;
    $f$ and $g$ are derived here by forward-mode autodiff. The variance, not $\sigma$, is the
    primitive because it is smooth where $\sigma$ is not: for VP, $\sigma(t) \sim
    \sqrt{\beta_{\min} t}$ has an infinite derivative at $t = 0$ while $\sigma^2$ does not.

    All methods are elementwise in `t`: pass a scalar or an array of times.
    """

    T: eqx.AbstractVar[float]

    @abc.abstractmethod
    def alpha(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""The signal scale $\alpha(t)$, with $\alpha(0) = 1$."""

    @abc.abstractmethod
    def variance(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""The noise variance $\sigma(t)^2$."""

    def sigma(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""The noise scale $\sigma(t) = \sqrt{\sigma(t)^2}$."""
        return jnp.sqrt(self.variance(t))

    def drift_coeff(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""The drift coefficient $f(t) = \frac{d}{dt}\log\alpha(t)$ of $dx = f x\,dt + g\,dW$."""
        return _time_derivative(lambda u: jnp.log(self.alpha(u)), jnp.asarray(t))

    def diffusion_squared(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""$g(t)^2 = \frac{d}{dt}\sigma(t)^2 - 2 f(t)\sigma(t)^2$."""
        t = jnp.asarray(t)
        return _time_derivative(self.variance, t) - 2.0 * self.drift_coeff(t) * self.variance(t)

    def diffusion(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""The diffusion coefficient $g(t) = \sqrt{g(t)^2}$ (round-off below 0 is clipped)."""
        return jnp.sqrt(jnp.maximum(self.diffusion_squared(t), 0.0))

    @property
    def prior(self) -> IsotropicNormal:
        r"""The reference law at $t = T$: $\mathcal{N}(0, \sigma(T)^2 I)$, the law of $x_T$ for
        data at the origin ($\approx\mathcal{N}(0, I)$ for VP and sub-VP, $\mathcal{N}(0,
        \sigma_{\max}^2 I)$ for VE, as in Song et al. 2021)."""
        return IsotropicNormal(self.sigma(jnp.asarray(self.T, dtype=float)))

    def marginal(self, law: GaussianMixture, t: Float[ArrayLike, ""]) -> GaussianMixture:
        r"""The exact law of $x_t$ when $x_0 \sim$ `law`:
        $\sum_k w_k \mathcal{N}(\alpha(t)\mu_k, \alpha(t)^2\Sigma_k + \sigma(t)^2 I)$
        (see [`GaussianMixture.affine`][gpm_sde.GaussianMixture.affine])."""
        if not isinstance(law, GaussianMixture):
            raise TypeError(
                f"`law` must be a GaussianMixture to get an exact marginal, got "
                f"{type(law).__name__}; for data arrays use `sample_marginal`."
            )
        check_time_range("t", t, 0.0, self.T, type(self).__name__)
        t = jnp.asarray(t, dtype=law.means.dtype)
        return law.affine(self.alpha(t), self.sigma(t))

    def sample_marginal(
        self,
        key: PRNGKeyArray,
        x0: Float[Array, " n *event"],
        t: Float[ArrayLike, ""] | Float[Array, " n"],
    ) -> Float[Array, " n *event"]:
        r"""Sample $x_t = \alpha(t)x_0 + \sigma(t)\varepsilon$ given data `x0: (n, *event)`, at one
        time `t` or at one time per point (`t: (n,)`)."""
        check_time_range("t", t, 0.0, self.T, type(self).__name__)
        t = jnp.asarray(t, dtype=x0.dtype)
        if t.ndim == 1 and t.shape[0] != x0.shape[0]:
            raise ValueError(
                f"`t` must be a scalar or have one time per point, shape ({x0.shape[0]},), "
                f"got shape {t.shape}."
            )
        shape = (-1,) + (1,) * (x0.ndim - 1) if t.ndim == 1 else ()
        alpha = jnp.reshape(self.alpha(t), shape)
        sigma = jnp.reshape(self.sigma(t), shape)
        return alpha * x0 + sigma * jr.normal(key, x0.shape, dtype=x0.dtype)


@eqx.filter_jit
def _coefficients(process: AbstractLinearProcess) -> tuple[Array, dict[str, Array]]:
    t = jnp.linspace(0.0, process.T, 9)
    return t, {
        "alpha": process.alpha(t),
        "sigma": process.sigma(t),
        "drift_coeff": process.drift_coeff(t),
        "diffusion": process.diffusion(t),
    }


def check_coefficients(process: AbstractLinearProcess, call: str, names: tuple[str, ...]) -> None:
    r"""Raise `ValueError` unless the concrete `process` has coefficients $\alpha$, $\sigma$,
    $f$, $g$ of moderate size at 9 times spanning $[0, T]$ and a non-degenerate prior.

    Arguments that pass their own range checks can still overflow or underflow the float type
    together (a huge $\beta_{\max}$ underflows $\alpha(T)$ and makes $f = (\log\alpha)'$ NaN;
    a tiny $T$ overflows $g$; XLA flushes subnormal floats to zero). This finds that at
    construction, naming the constructor's arguments, instead of as NaN samples later. "Moderate"
    means within $m^{1/4}$ of zero in magnitude, $m$ the largest float (1.3e77 in float64), so
    that the products the SDEs form ($g^2$ times a score) stay finite however they are
    evaluated, and $\sigma(T) \ge t^{1/4}$, $t$ the smallest normal float. `call` is how the
    constructor was called, `names` its arguments."""
    if not is_concrete(process):
        return
    args = ", ".join(f"`{n}`" for n in names)
    with jax.ensure_compile_time_eval():  # concrete values, even when built inside a `jit`
        t, values = _coefficients(process)
    info = np.finfo(np.asarray(values["sigma"]).dtype)
    big, small = float(info.max) ** 0.25, float(info.tiny) ** 0.25
    for what, value in values.items():
        v = np.asarray(jax.device_get(value), dtype=np.float64)
        bad = np.flatnonzero(~(np.abs(v) <= big))
        if bad.size:
            i = int(bad[0])
            size = f"beyond {big:.3g} in magnitude" if np.isfinite(v[i]) else "not finite"
            raise ValueError(
                f"{call} has {what}(t) = {v[i]:.6g} at t = {float(t[i]):.6g}, {size}: its "
                f"arguments overflow or underflow floating point; pass {args} of moderate size "
                f"(the defaults are typical)."
            )
    sigma_T = float(np.asarray(values["sigma"])[-1])
    if not sigma_T >= small:
        raise ValueError(
            f"{call} has sigma(T) = {sigma_T:.6g} < {small:.3g}: its prior N(0, sigma(T)^2 I) is "
            f"degenerate (the noise never builds up, or a subnormal value was flushed to zero); "
            f"pass {args} of moderate size (the defaults are typical)."
        )
