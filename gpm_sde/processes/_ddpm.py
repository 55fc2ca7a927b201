r"""The discrete DDPM chain of Ho et al. 2020: $N$ Gaussian noising steps and their reversal.

Steps are **1-based, as in the paper**: the chain is $x_0 \to x_1 \to \dots \to x_N$, the step
$n \in \{1, \dots, N\}$ maps $x_{n-1}$ to $x_n$ with variance $\beta_n$, and $\beta_n$ is stored
at index `n - 1` of `DDPM.betas`. Marginal quantities ($\bar\alpha_n$, $q(x_n \mid x_0)$) also
accept $n = 0$, the data, with $\bar\alpha_0 = 1$.

A step index `n` may be a Python int, a concrete integer array or a traced one (under
`jax.jit`, `jax.vmap`, `jax.lax.fori_loop`): everything is computed with `jnp` indexing and
`jnp.where`. Concrete indices are checked against $1..N$ (or $0..N$); traced ones cannot be
checked, and an out-of-range traced index is clamped by JAX's indexing rules.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._checks import IntLike, as_numpy, check_float_array, check_int, check_scalar, is_concrete
from ..distributions import GaussianMixture, IsotropicNormal

_VARIANCES = ("posterior", "beta")
_SCHEDULES = ("linear", "cosine")
_COSINE_BETA_MAX = 0.999


def _check_step(name: str, n: Any, lo: int, hi: int) -> None:
    """Raise unless `n` is an integer step index (scalar or 1-D), and, when concrete, in lo..hi."""
    dtype = jnp.asarray(n).dtype
    if dtype == jnp.bool_ or not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(
            f"`{name}` must be an integer step index (1-based, as in Ho et al. 2020), got "
            f"dtype {dtype}; pass an int such as `{name}=1`, or an integer array."
        )
    if not is_concrete(n):
        return
    arr = as_numpy(n)
    if np.any(arr < lo) or np.any(arr > hi):
        raise ValueError(
            f"`{name}` must lie in {lo}..{hi}: steps are 1-based as in Ho et al. 2020 "
            f"(n = 1 is the first noising step, n = N = {hi} the last"
            f"{', n = 0 the data' if lo == 0 else ''}), got {arr!r}; pass a step in that range."
        )


class DDPM(eqx.Module):
    r"""The DDPM forward chain (Ho et al. 2020, eq. 2),

    $$q(x_n \mid x_{n-1}) = \mathcal{N}\big(\sqrt{1 - \beta_n}\, x_{n-1},\ \beta_n I\big),
    \qquad n = 1, \dots, N,$$

    whose marginals are $q(x_n \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_n}\,x_0,
    (1 - \bar\alpha_n) I)$ with $\alpha_n = 1 - \beta_n$, $\bar\alpha_n = \prod_{i \le n}
    \alpha_i$ (eq. 4), and the ε-parameterised reverse chain of Algorithm 2. Build it with
    [`ddpm`][gpm_sde.processes.ddpm].

    Steps `n` are 1-based, as in the paper: $\beta_n$ is `betas[n - 1]`. Methods act on a
    cloud `(m, *event)` of any event shape, with one step `n` for the whole cloud or one step
    per point (`n: (m,)`).

    **Arguments:**

    - `betas`: `(N,)` variances $\beta_1, \dots, \beta_N$, each finite and in $(0, 1)$.
    """

    betas: Float[Array, " N"]

    def __init__(self, betas: Float[ArrayLike, " N"]):
        check_float_array("betas", betas, 1, "(N,), one variance per step")
        betas_arr = jnp.asarray(betas)
        if betas_arr.shape[0] == 0:
            raise ValueError(
                "`betas` must hold at least one step, got shape (0,); pass e.g. "
                "`ddpm(n_steps=1000)`."
            )
        if is_concrete(betas_arr):
            b = as_numpy(betas_arr)
            # Subnormal betas count as 0: XLA flushes them to zero, and 1 - alpha_bar = 0
            # then divides by zero in the reverse mean.
            tiny = np.finfo(b.dtype).tiny
            bad = np.nonzero(~(np.isfinite(b) & (b >= tiny) & (b < 1)))[0]
            if bad.size:
                raise ValueError(
                    f"`betas` must be finite and in (0, 1) (they are per-step noise variances), "
                    f"but step(s) n = {(bad + 1).tolist()} hold {b[bad].tolist()}; pass values "
                    f"in (0, 1) (at least {tiny:.3g}, the smallest normal float), e.g. the "
                    f"linear schedule of `ddpm(beta_1=1e-4, beta_N=0.02)`."
                )
        self.betas = betas_arr

    @property
    def n_steps(self) -> int:
        """The number of steps $N$."""
        return self.betas.shape[0]

    @property
    def alphas(self) -> Float[Array, " N"]:
        r"""$\alpha_n = 1 - \beta_n$ for $n = 1..N$, at index `n - 1` (Ho et al. 2020, §2)."""
        return 1.0 - self.betas

    def _log_alpha_bars(self) -> Array:
        # log ᾱ_n for n = 0..N, at index n; log ᾱ_0 = 0. Summing log1p(-β) keeps the product
        # accurate over many steps, and 1 - ᾱ_n = -expm1(log ᾱ_n) keeps 1 - ᾱ_1 = β_1 exact.
        zero = jnp.zeros((1,), dtype=self.betas.dtype)
        return jnp.concatenate([zero, jnp.cumsum(jnp.log1p(-self.betas))])

    @property
    def alpha_bars(self) -> Float[Array, " N"]:
        r"""$\bar\alpha_n = \prod_{i=1}^n \alpha_i$ for $n = 1..N$, at index `n - 1`
        (Ho et al. 2020, §2), computed as $\exp\sum_{i \le n}\log(1 - \beta_i)$."""
        return jnp.exp(self._log_alpha_bars()[1:])

    @property
    def prior(self) -> IsotropicNormal:
        r"""$\mathcal{N}(0, I)$, where ancestral sampling starts ($\approx q(x_N)$ when
        $\bar\alpha_N \approx 0$; Ho et al. 2020, Algorithm 2)."""
        return IsotropicNormal(1.0)

    def beta(self, n: Int[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        r"""$\beta_n$ for steps $n \in 1..N$."""
        _check_step("n", n, 1, self.n_steps)
        return self.betas[jnp.asarray(n) - 1]

    def alpha(self, n: Int[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        r"""$\alpha_n = 1 - \beta_n$ for steps $n \in 1..N$."""
        return 1.0 - self.beta(n)

    def alpha_bar(self, n: Int[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        r"""$\bar\alpha_n = \prod_{i=1}^n (1 - \beta_i)$ for $n \in 0..N$, with
        $\bar\alpha_0 = 1$ (Ho et al. 2020, eq. 4)."""
        _check_step("n", n, 0, self.n_steps)
        return jnp.exp(self._log_alpha_bars()[jnp.asarray(n)])

    def one_minus_alpha_bar(self, n: Int[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        r"""$1 - \bar\alpha_n$, the variance of $q(x_n \mid x_0)$, for $n \in 0..N$ (Ho et al.
        2020, eq. 4), as $-\operatorname{expm1}(\log\bar\alpha_n)$: no cancellation when
        $\bar\alpha_n \approx 1$."""
        _check_step("n", n, 0, self.n_steps)
        return -jnp.expm1(self._log_alpha_bars()[jnp.asarray(n)])

    def _coef(self, coef: Array, n: Array, x: Array) -> Array:
        # Shape a per-step coefficient to broadcast against the cloud `x`: a scalar for one
        # step, `(m, 1, ..., 1)` for one step per point. Cast to the cloud's dtype.
        if n.ndim == 1:
            coef = jnp.reshape(coef, (-1,) + (1,) * (x.ndim - 1))
        return coef.astype(x.dtype)

    def _steps(self, name: str, n: Any, x: Array, lo: int = 1) -> Array:
        _check_step(name, n, lo, self.n_steps)
        n = jnp.asarray(n)
        if n.ndim > 1 or (n.ndim == 1 and (x.ndim == 0 or n.shape[0] != x.shape[0])):
            m = x.shape[0] if x.ndim else "m"
            raise ValueError(
                f"`{name}` must be a scalar step or one step per point, shape ({m},), got "
                f"shape {n.shape}."
            )
        return n

    def forward_step(
        self,
        key: PRNGKeyArray,
        x_prev: Float[Array, " m *event"],
        n: Int[ArrayLike, ""] | Int[Array, " m"],
    ) -> Float[Array, " m *event"]:
        r"""One noising step $x_{n-1} \mapsto x_n$ (Ho et al. 2020, eq. 2):

        $$x_n = \sqrt{1 - \beta_n}\, x_{n-1} + \sqrt{\beta_n}\, \varepsilon,
        \qquad \varepsilon \sim \mathcal{N}(0, I),$$

        with $\varepsilon$ = `jax.random.normal(key, x_prev.shape)`, for $n \in 1..N$.
        """
        n = self._steps("n", n, x_prev)
        beta = self.betas[n - 1]
        a = self._coef(jnp.sqrt(1.0 - beta), n, x_prev)
        b = self._coef(jnp.sqrt(beta), n, x_prev)
        return a * x_prev + b * jr.normal(key, x_prev.shape, dtype=x_prev.dtype)

    def marginal(self, law: GaussianMixture, n: Int[ArrayLike, ""]) -> GaussianMixture:
        r"""The exact law of $x_n$ when $x_0 \sim$ `law`, for $n \in 0..N$ (Ho et al. 2020,
        eq. 4, pushed through the mixture):

        $$\sum_k w_k\, \mathcal{N}\big(\sqrt{\bar\alpha_n}\,\mu_k,\ \bar\alpha_n\Sigma_k
        + (1 - \bar\alpha_n) I\big)$$

        (see [`GaussianMixture.affine`][gpm_sde.GaussianMixture.affine]).
        """
        if not isinstance(law, GaussianMixture):
            raise TypeError(
                f"`law` must be a GaussianMixture to get an exact marginal, got "
                f"{type(law).__name__}; for data arrays use `sample_marginal`."
            )
        _check_step("n", n, 0, self.n_steps)
        if jnp.ndim(n) != 0:
            raise ValueError(f"`n` must be a scalar step for `marginal`, got shape {jnp.shape(n)}.")
        dtype = law.means.dtype
        return law.affine(
            jnp.sqrt(self.alpha_bar(n)).astype(dtype),
            jnp.sqrt(self.one_minus_alpha_bar(n)).astype(dtype),
        )

    def sample_marginal(
        self,
        key: PRNGKeyArray,
        x0: Float[Array, " m *event"],
        n: Int[ArrayLike, ""] | Int[Array, " m"],
    ) -> Float[Array, " m *event"]:
        r"""Sample $q(x_n \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_n}\,x_0, (1 - \bar\alpha_n) I)$
        (Ho et al. 2020, eq. 4),

        $$x_n = \sqrt{\bar\alpha_n}\, x_0 + \sqrt{1 - \bar\alpha_n}\, \varepsilon,$$

        given data `x0: (m, *event)`, at one step $n \in 0..N$ or one step per point
        (`n: (m,)`).
        """
        n = self._steps("n", n, x0, lo=0)
        mean = self._coef(jnp.sqrt(self.alpha_bar(n)), n, x0)
        std = self._coef(jnp.sqrt(self.one_minus_alpha_bar(n)), n, x0)
        return mean * x0 + std * jr.normal(key, x0.shape, dtype=x0.dtype)

    def posterior_mean_variance(
        self,
        x0: Float[Array, " m *event"],
        xn: Float[Array, " m *event"],
        n: Int[ArrayLike, ""] | Int[Array, " m"],
    ) -> tuple[Float[Array, " m *event"], Float[Array, ""] | Float[Array, " m"]]:
        r"""Mean and variance of the forward posterior $q(x_{n-1} \mid x_n, x_0) =
        \mathcal{N}(\tilde\mu_n, \tilde\beta_n I)$, $n \in 1..N$ (Ho et al. 2020, eq. 6–7):

        $$\tilde\mu_n = \frac{\sqrt{\bar\alpha_{n-1}}\,\beta_n}{1 - \bar\alpha_n}\, x_0
        + \frac{\sqrt{\alpha_n}\,(1 - \bar\alpha_{n-1})}{1 - \bar\alpha_n}\, x_n,
        \qquad \tilde\beta_n = \frac{1 - \bar\alpha_{n-1}}{1 - \bar\alpha_n}\, \beta_n .$$

        At $n = 1$: $\tilde\mu_1 = x_0$, $\tilde\beta_1 = 0$. Returns `(mean, variance)`, the
        variance a scalar, or `(m,)` for one step per point.
        """
        n = self._steps("n", n, xn)
        log_ab = self._log_alpha_bars()
        beta = self.betas[n - 1]
        ab_prev, one_m_ab_prev = jnp.exp(log_ab[n - 1]), -jnp.expm1(log_ab[n - 1])
        one_m_ab = -jnp.expm1(log_ab[n])
        c0 = self._coef(jnp.sqrt(ab_prev) * beta / one_m_ab, n, xn)
        cn = self._coef(jnp.sqrt(1.0 - beta) * one_m_ab_prev / one_m_ab, n, xn)
        variance = (one_m_ab_prev / one_m_ab * beta).astype(xn.dtype)
        return c0 * x0 + cn * xn, variance

    def eps_mean(
        self,
        xn: Float[Array, " m *event"],
        eps_hat: Float[Array, " m *event"],
        n: Int[ArrayLike, ""] | Int[Array, " m"],
    ) -> Float[Array, " m *event"]:
        r"""The ε-parameterised reverse mean, $n \in 1..N$ (Ho et al. 2020, eq. 11):

        $$\mu_n(x_n, \hat\varepsilon) = \frac{1}{\sqrt{\alpha_n}}\Big(x_n
        - \frac{\beta_n}{\sqrt{1 - \bar\alpha_n}}\,\hat\varepsilon\Big).$$

        With the true noise $\varepsilon$ of $x_n = \sqrt{\bar\alpha_n}x_0 +
        \sqrt{1-\bar\alpha_n}\varepsilon$ it equals the posterior mean $\tilde\mu_n(x_0, x_n)$.
        """
        n = self._steps("n", n, xn)
        beta = self.betas[n - 1]
        one_m_ab = -jnp.expm1(self._log_alpha_bars()[n])
        c_eps = self._coef(beta / jnp.sqrt(one_m_ab), n, xn)
        inv_sqrt_alpha = self._coef(1.0 / jnp.sqrt(1.0 - beta), n, xn)
        return inv_sqrt_alpha * (xn - c_eps * eps_hat)

    def predict_x0(
        self,
        xn: Float[Array, " m *event"],
        eps_hat: Float[Array, " m *event"],
        n: Int[ArrayLike, ""] | Int[Array, " m"],
    ) -> Float[Array, " m *event"]:
        r"""The data estimate from a noise estimate, $n \in 1..N$, eq. 4 solved for $x_0$
        (Ho et al. 2020, eq. 15):

        $$\hat x_0 = \frac{x_n - \sqrt{1 - \bar\alpha_n}\,\hat\varepsilon}{\sqrt{\bar\alpha_n}}.$$
        """
        n = self._steps("n", n, xn)
        log_ab = self._log_alpha_bars()[n]
        std = self._coef(jnp.sqrt(-jnp.expm1(log_ab)), n, xn)
        inv_mean = self._coef(jnp.exp(-0.5 * log_ab), n, xn)
        return inv_mean * (xn - std * eps_hat)

    def ancestral_step(
        self,
        key: PRNGKeyArray,
        xn: Float[Array, " m *event"],
        eps_hat: Float[Array, " m *event"],
        n: Int[ArrayLike, ""] | Int[Array, " m"],
        variance: str = "posterior",
    ) -> Float[Array, " m *event"]:
        r"""One reverse step $x_n \mapsto x_{n-1}$, $n \in 1..N$ (Ho et al. 2020, Algorithm 2):

        $$x_{n-1} = \mu_n(x_n, \hat\varepsilon) + \sigma_n z, \qquad z \sim \mathcal{N}(0, I),$$

        with $\mu_n$ of [`eps_mean`][gpm_sde.processes.DDPM.eps_mean] (eq. 11) and
        $\sigma_n^2 = \tilde\beta_n$ (`variance="posterior"`, eq. 7) or $\sigma_n^2 = \beta_n$
        (`variance="beta"`), the two choices of Ho et al. 2020, §3.2. No noise is added at
        $n = 1$ ($z = 0$ in Algorithm 2), also for a traced `n`.
        """
        if variance not in _VARIANCES:
            raise ValueError(
                f"`variance` must be one of {_VARIANCES} (σ_n² = β̃_n or β_n, Ho et al. 2020 "
                f"§3.2), got {variance!r}."
            )
        n = self._steps("n", n, xn)
        mean = self.eps_mean(xn, eps_hat, n)
        beta = self.betas[n - 1]
        if variance == "posterior":
            log_ab = self._log_alpha_bars()
            var = -jnp.expm1(log_ab[n - 1]) / -jnp.expm1(log_ab[n]) * beta
        else:
            var = beta
        sigma = jnp.where(n > 1, jnp.sqrt(var), 0.0)
        z = jr.normal(key, xn.shape, dtype=xn.dtype)
        return mean + self._coef(sigma, n, xn) * z

    def eps_from_score(
        self,
        score_value: Float[Array, " m *event"],
        n: Int[ArrayLike, ""] | Int[Array, " m"],
    ) -> Float[Array, " m *event"]:
        r"""The noise prediction equivalent to a score of the marginal $q_n$, $n \in 1..N$:

        $$\hat\varepsilon = -\sqrt{1 - \bar\alpha_n}\, \nabla_{x_n}\log q_n(x_n),$$

        since $\nabla\log q(x_n \mid x_0) = -\varepsilon/\sqrt{1-\bar\alpha_n}$ under eq. 4 and,
        by Tweedie's formula, $\mathbb{E}[\varepsilon \mid x_n] = -\sqrt{1-\bar\alpha_n}
        \nabla\log q_n(x_n)$ (Ho et al. 2020, §3.2; Song et al. 2021, eq. 3). With the exact
        mixture score of [`marginal`][gpm_sde.processes.DDPM.marginal], `eps_mean` is then
        the exact reverse mean $\mathbb{E}[x_{n-1} \mid x_n]$.
        """
        n = self._steps("n", n, score_value)
        std = self._coef(jnp.sqrt(self.one_minus_alpha_bar(n)), n, score_value)
        return -std * score_value


def _linear_betas(n_steps: int, beta_1: float, beta_N: float) -> np.ndarray:
    return np.linspace(beta_1, beta_N, n_steps, dtype=np.float64)


def _cosine_betas(n_steps: int, s: float) -> np.ndarray:
    # β_n = 1 - f(n)/f(n-1), f(n) = cos²φ_n, φ_n = (n/N + s)/(1 + s)·π/2 (Nichol & Dhariwal
    # 2021, eq. 17), written as sin(φ_n - φ_{n-1}) sin(φ_n + φ_{n-1}) / cos²φ_{n-1}: no
    # cancellation for the small early betas.
    steps = np.arange(n_steps + 1, dtype=np.float64)
    phi = (steps / n_steps + s) / (1.0 + s) * (np.pi / 2)
    betas = np.sin(phi[1:] - phi[:-1]) * np.sin(phi[1:] + phi[:-1]) / np.cos(phi[:-1]) ** 2
    return np.minimum(betas, _COSINE_BETA_MAX)


def ddpm(
    n_steps: IntLike = 1000,
    beta_1: float = 1e-4,
    beta_N: float = 0.02,
    schedule: str = "linear",
    s: float = 0.008,
) -> DDPM:
    r"""A DDPM chain of `n_steps` $= N$ steps.

    - `schedule="linear"`: $\beta_n$ linear from $\beta_1$ = `beta_1` to $\beta_N$ = `beta_N`
      (Ho et al. 2020, §4: $N = 1000$, $\beta_1 = 10^{-4}$, $\beta_N = 0.02$, the defaults).
    - `schedule="cosine"`: $\beta_n = \min\big(1 - \bar\alpha_n/\bar\alpha_{n-1},\ 0.999\big)$
      with $\bar\alpha_n = f(n)/f(0)$, $f(n) = \cos^2\!\big(\frac{n/N + s}{1 + s}\frac{\pi}{2}
      \big)$ (Nichol & Dhariwal 2021, eq. 17; offset `s`, default 0.008). `beta_1` and
      `beta_N` do not apply and must be left at their defaults.
    """
    n_steps = check_int(
        "n_steps",
        n_steps,
        1,
        "the number N of noising steps; a step index is an int32",
        below=2**31,
        example=1000,
    )
    for name, value in (("beta_1", beta_1), ("beta_N", beta_N), ("s", s)):
        check_scalar(name, value)
    if not isinstance(schedule, str) or schedule not in _SCHEDULES:
        raise ValueError(f"`schedule` must be one of {_SCHEDULES}, got {schedule!r}.")
    if schedule == "linear":
        for name, value in (("beta_1", beta_1), ("beta_N", beta_N)):
            if not (np.isfinite(value) and np.finfo(np.float64).tiny <= value < 1.0):
                raise ValueError(
                    f"`{name}` must be finite and in (0, 1) (a per-step noise variance, at "
                    f"least the smallest normal float), got {value!r}; pass e.g. beta_1=1e-4, "
                    f"beta_N=0.02 (Ho et al. 2020)."
                )
        betas = _linear_betas(n_steps, beta_1, beta_N)
    else:
        if (beta_1, beta_N) != (1e-4, 0.02):
            raise ValueError(
                f"`beta_1` and `beta_N` set the linear schedule only, got beta_1={beta_1!r}, "
                f"beta_N={beta_N!r} with schedule='cosine'; the cosine schedule is set by `s`."
            )
        if not (np.isfinite(s) and s >= 0.0):
            raise ValueError(f"`s` must be finite and >= 0, got {s!r}; pass e.g. s=0.008.")
        betas = _cosine_betas(n_steps, s)
        if not np.all(betas >= np.finfo(np.float64).tiny):
            raise ValueError(
                f"`s` = {s!r} with `n_steps` = {n_steps} gives per-step variances that "
                f"underflow to 0 (the smallest is {betas.min()!r}); pass a small offset, e.g. "
                f"s=0.008 (Nichol & Dhariwal 2021)."
            )
    return DDPM(jnp.asarray(betas, dtype=float))
