r"""GAN losses on discriminator outputs: minimax, non-saturating, Wasserstein, least squares,
hinge and f-GAN.

Every loss is a small final module called as `loss(real, fake) -> (d_loss, g_loss)` on the
discriminator outputs for a batch of real points and a batch of generated points (arrays of
any shape; each is averaged over all its entries). Both are **minimised**: the discriminator
descends `d_loss`, the generator descends `g_loss`. `g_loss` keeps only the terms that depend on
the generated points. `discriminator_loss(real, fake)` and `generator_loss(fake)` give each
alone; [`gan_loss`][gpm_sde.losses.gan_loss] builds one by name.

Sign convention: the discriminator (critic) is trained **high on real data and low on
generated data** for every loss here. For the particle fields of
[`discriminator_field`][gpm_sde.flows.discriminator_field] this means: a logit trained by
`MinimaxGAN`/`NonSaturatingGAN` pairs with `kind="nonsaturating"`; a critic trained by
`WassersteinGAN` pairs with `kind="ipm"` and one trained by `HingeGAN` with `kind="hinge"`
(both generator costs are $c(d) = -d$), and the field moves the particles up the critic,
towards the data. A critic trained low on data (the GPM authors' IPM convention) is used with
`discriminator_field(D, "ipm", low_on_data=True)`.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_finite, check_float_array

_LOG2 = math.log(2.0)


def _mean(v: Array) -> Array:
    return jnp.mean(v)


def _check_outputs(name: str, value: Any) -> None:
    """Discriminator outputs: a floating array (`TypeError` otherwise), non-empty (`ValueError`)."""
    check_float_array(name, value)
    arr = jnp.asarray(value)
    if arr.size == 0:
        raise ValueError(
            f"`{name}` must be a non-empty floating array of discriminator outputs (one per "
            f"point), got shape {arr.shape}; pass `jax.vmap(D)(x)`."
        )


class AbstractGANLoss(eqx.Module):
    r"""A GAN loss: `discriminator_loss(real, fake)` and `generator_loss(fake)`, both
    minimised, on the discriminator outputs `real = D(x)`, $x \sim p$ (data) and
    `fake = D(G(z))`, $G(z) \sim q$ (generator). Calling the loss returns both."""

    @abc.abstractmethod
    def discriminator_loss(
        self, real: Float[ArrayLike, "*n"], fake: Float[ArrayLike, "*m"]
    ) -> Float[Array, ""]:
        """The loss the discriminator minimises."""

    @abc.abstractmethod
    def generator_loss(self, fake: Float[ArrayLike, "*m"]) -> Float[Array, ""]:
        """The loss the generator minimises (the terms that depend on generated points)."""

    def __call__(
        self, real: Float[ArrayLike, "*n"], fake: Float[ArrayLike, "*m"]
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        _check_outputs("real", real)
        _check_outputs("fake", fake)
        real, fake = jnp.asarray(real), jnp.asarray(fake)
        return self.discriminator_loss(real, fake), self.generator_loss(fake)


class MinimaxGAN(AbstractGANLoss):
    r"""The minimax GAN of Goodfellow et al. 2014, eq. 1, on logits $\ell = \operatorname{logit}
    D$:

    $$V(D, G) = \mathbb{E}_p\log D(x) + \mathbb{E}_q\log(1 - D(\tilde x)),\qquad
    \text{d\_loss} = -V = \mathbb{E}_p\operatorname{softplus}(-\ell)
    + \mathbb{E}_q\operatorname{softplus}(\ell),$$

    $\text{g\_loss} = \mathbb{E}_q\log(1 - D(\tilde x)) = -\mathbb{E}_q
    \operatorname{softplus}(\ell)$. The optimal discriminator is $D^* = p/(p + q)$, i.e.
    $\ell^* = \log p - \log q$, where $V = 2\,\mathrm{JS}(p\|q) - \log 4$ (prop. 1, thm. 1).
    """

    def discriminator_loss(self, real, fake):
        return _mean(jax.nn.softplus(-jnp.asarray(real))) + _mean(
            jax.nn.softplus(jnp.asarray(fake))
        )

    def generator_loss(self, fake):
        return -_mean(jax.nn.softplus(jnp.asarray(fake)))


class NonSaturatingGAN(AbstractGANLoss):
    r"""The non-saturating GAN (Goodfellow et al. 2014, §3): the discriminator loss of
    [`MinimaxGAN`][gpm_sde.losses.MinimaxGAN], and the generator maximises $\log D(\tilde x)$
    instead of minimising $\log(1 - D(\tilde x))$:
    $\text{g\_loss} = -\mathbb{E}_q\log D(\tilde x) = \mathbb{E}_q\operatorname{softplus}(-\ell)$.
    """

    def discriminator_loss(self, real, fake):
        return MinimaxGAN().discriminator_loss(real, fake)

    def generator_loss(self, fake):
        return _mean(jax.nn.softplus(-jnp.asarray(fake)))


class WassersteinGAN(AbstractGANLoss):
    r"""The Wasserstein GAN (Arjovsky et al. 2017, §3 and Algorithm 1), with a critic $f$
    trained high on data:

    $$\text{d\_loss} = \mathbb{E}_q f(\tilde x) - \mathbb{E}_p f(x),\qquad
    \text{g\_loss} = -\mathbb{E}_q f(\tilde x).$$

    Over 1-Lipschitz critics, $-\min \text{d\_loss} = W_1(p, q)$ (Kantorovich–Rubinstein).
    Keep the critic Lipschitz with [`clip_weights`][gpm_sde.losses.clip_weights] (Arjovsky et
    al.) or add [`gradient_penalty`][gpm_sde.losses.gradient_penalty] (Gulrajani et al. 2017).
    """

    def discriminator_loss(self, real, fake):
        return _mean(jnp.asarray(fake)) - _mean(jnp.asarray(real))

    def generator_loss(self, fake):
        return -_mean(jnp.asarray(fake))


class HingeGAN(AbstractGANLoss):
    r"""The hinge GAN (Lim & Ye 2017; Miyato et al. 2018, §4), critic $D$ trained high on
    data:

    $$\text{d\_loss} = \mathbb{E}_p\max(0, 1 - D(x)) + \mathbb{E}_q\max(0, 1 + D(\tilde x)),
    \qquad \text{g\_loss} = -\mathbb{E}_q D(\tilde x).$$

    `d_loss` is 0 exactly when the critic reaches the margins, $D \ge 1$ on data and
    $D \le -1$ on generated points.
    """

    def discriminator_loss(self, real, fake):
        return _mean(jax.nn.relu(1.0 - jnp.asarray(real))) + _mean(
            jax.nn.relu(1.0 + jnp.asarray(fake))
        )

    def generator_loss(self, fake):
        return -_mean(jnp.asarray(fake))


class LeastSquaresGAN(AbstractGANLoss):
    r"""The least-squares GAN (Mao et al. 2017, eq. 2), on the raw discriminator output $D$
    (no sigmoid):

    $$\text{d\_loss} = \tfrac12\mathbb{E}_p(D(x) - b)^2 + \tfrac12\mathbb{E}_q(D(\tilde x)
    - a)^2,\qquad \text{g\_loss} = \tfrac12\mathbb{E}_q(D(\tilde x) - c)^2 .$$

    The default $a = 0$, $b = c = 1$ is the 0-1 coding that Mao et al. propose alongside
    $a = -1, b = 1, c = 0$ (§3.2): real labelled 1, fake 0, and the generator aims for the
    real label. The discriminator loss is minimised pointwise by
    $D^* = (b\,p + a\,q)/(p + q)$ (Mao et al. 2017, §3.2), so $D^* = p/(p + q)$ with the default;
    with $b - c = 1$, $b - a = 2$ the generator then minimises a Pearson $\chi^2$ divergence
    (Mao et al. 2017, §3.2).

    **Arguments:** `a`, `b`, `c` — the labels for generated points, real points, and the
    generator's target.
    """

    a: float = 0.0
    b: float = 1.0
    c: float = 1.0

    def __check_init__(self):
        for name in ("a", "b", "c"):
            check_finite(name, getattr(self, name))

    def discriminator_loss(self, real, fake):
        return 0.5 * _mean((jnp.asarray(real) - self.b) ** 2) + 0.5 * _mean(
            (jnp.asarray(fake) - self.a) ** 2
        )

    def generator_loss(self, fake):
        return 0.5 * _mean((jnp.asarray(fake) - self.c) ** 2)


# --- f-GAN -----------------------------------------------------------------------------------


class AbstractFDivergence(eqx.Module):
    r"""An f-divergence $D_f(P\|Q) = \int q\, f(p/q)\,dx$ with $f$ convex, $f(1) = 0$
    (Nowozin et al. 2016, eq. 1), with what f-GAN needs (their Tables 1 and 2): the generator
    function $f$, its Fenchel conjugate $f^*(t) = \sup_u\,(tu - f(u))$, and the output
    activation $g_f$ mapping a raw network output $v$ into the domain of $f^*$."""

    @abc.abstractmethod
    def f(self, u: Float[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        """The generator function $f(u)$, $u = p/q > 0$."""

    @abc.abstractmethod
    def conjugate(self, t: Float[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        """The Fenchel conjugate $f^*(t)$ on its domain."""

    @abc.abstractmethod
    def activation(self, v: Float[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        """The output activation $g_f(v)$ (Nowozin et al. 2016, Table 2)."""

    def conjugate_of_activation(self, v: Float[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        r"""$f^*(g_f(v))$, in a form stable for large $|v|$ where one is known."""
        return self.conjugate(self.activation(v))

    @abc.abstractmethod
    def optimal_output(self, log_ratio: Float[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        r"""The raw output $v^*$ with $g_f(v^*) = f'(p/q)$, the maximiser of the variational
        bound (Nowozin et al. 2016, §2.2), from $\log(p/q)$."""


class KLDivergence(AbstractFDivergence):
    r"""Kullback–Leibler $\mathrm{KL}(P\|Q)$: $f(u) = u\log u$, $f^*(t) = e^{t-1}$,
    $g_f(v) = v$ (Nowozin et al. 2016, Tables 1–2); $v^* = 1 + \log(p/q)$."""

    def f(self, u):
        return jax.scipy.special.xlogy(u, u)

    def conjugate(self, t):
        return jnp.exp(jnp.asarray(t) - 1.0)

    def activation(self, v):
        return jnp.asarray(v)

    def optimal_output(self, log_ratio):
        return 1.0 + jnp.asarray(log_ratio)


class ReverseKLDivergence(AbstractFDivergence):
    r"""Reverse Kullback–Leibler $\mathrm{KL}(Q\|P)$: $f(u) = -\log u$, $f^*(t) = -1 -
    \log(-t)$ for $t < 0$, $g_f(v) = -e^{-v}$ (Nowozin et al. 2016, Tables 1–2), so
    $f^*(g_f(v)) = v - 1$; $v^* = \log(p/q)$."""

    def f(self, u):
        return -jnp.log(u)

    def conjugate(self, t):
        return -1.0 - jnp.log(-jnp.asarray(t))

    def activation(self, v):
        return -jnp.exp(-jnp.asarray(v))

    def conjugate_of_activation(self, v):
        return jnp.asarray(v) - 1.0

    def optimal_output(self, log_ratio):
        return jnp.asarray(log_ratio)


class JensenShannonDivergence(AbstractFDivergence):
    r"""Jensen–Shannon, as f-GAN writes it (Nowozin et al. 2016, Tables 1–2):
    $f(u) = u\log u - (u + 1)\log\frac{u + 1}{2}$, $f^*(t) = -\log(2 - e^t)$ for
    $t < \log 2$, $g_f(v) = \log 2 - \operatorname{softplus}(-v)$, so
    $f^*(g_f(v)) = \operatorname{softplus}(v) - \log 2$; $v^* = \log(p/q)$. This $f$ gives
    $D_f = 2\,\mathrm{JS}(P\|Q)$ with $\mathrm{JS} = \tfrac12\mathrm{KL}(P\|M) +
    \tfrac12\mathrm{KL}(Q\|M)$, $M = \tfrac12(P + Q)$; the f-GAN objective is then the minimax
    GAN value plus $\log 4$."""

    def f(self, u):
        u = jnp.asarray(u)
        return jax.scipy.special.xlogy(u, u) - (u + 1.0) * jnp.log((u + 1.0) / 2.0)

    def conjugate(self, t):
        return -jnp.log(2.0 - jnp.exp(jnp.asarray(t)))

    def activation(self, v):
        return _LOG2 - jax.nn.softplus(-jnp.asarray(v))

    def conjugate_of_activation(self, v):
        return jax.nn.softplus(jnp.asarray(v)) - _LOG2

    def optimal_output(self, log_ratio):
        return jnp.asarray(log_ratio)


class PearsonChi2Divergence(AbstractFDivergence):
    r"""Pearson $\chi^2(P\|Q) = \int (p - q)^2/q$: $f(u) = (u - 1)^2$, $f^*(t) = t^2/4 + t$,
    $g_f(v) = v$ (Nowozin et al. 2016, Tables 1–2); $v^* = 2(p/q - 1)$."""

    def f(self, u):
        return (jnp.asarray(u) - 1.0) ** 2

    def conjugate(self, t):
        t = jnp.asarray(t)
        return 0.25 * t**2 + t

    def activation(self, v):
        return jnp.asarray(v)

    def optimal_output(self, log_ratio):
        return 2.0 * jnp.expm1(jnp.asarray(log_ratio))


_DIVERGENCES: dict[str, type[AbstractFDivergence]] = {
    "kl": KLDivergence,
    "reverse_kl": ReverseKLDivergence,
    "js": JensenShannonDivergence,
    "pearson": PearsonChi2Divergence,
}


def f_divergence(name: str) -> AbstractFDivergence:
    """The f-divergence called `name`: `"kl"`, `"reverse_kl"`, `"js"` or `"pearson"`."""
    if name not in _DIVERGENCES:
        raise ValueError(
            f"`divergence` must be one of {sorted(_DIVERGENCES)} (Nowozin et al. 2016, Table 2), "
            f"got {name!r}."
        )
    return _DIVERGENCES[name]()


class FGAN(AbstractGANLoss):
    r"""The f-GAN saddle-point objective (Nowozin et al. 2016, §3), with $T = g_f(V)$ for the raw
    discriminator output $V$:

    $$F(V) = \mathbb{E}_p\, g_f(V(x)) - \mathbb{E}_q\, f^*\big(g_f(V(\tilde x))\big)
    \le D_f(P\|Q),$$

    with equality at $T^* = f'(p/q)$ (their §2.2). The discriminator maximises $F$
    ($\text{d\_loss} = -F$) and the generator minimises it ($\text{g\_loss} =
    -\mathbb{E}_q f^*(g_f(V(\tilde x)))$, the saddle-point objective).

    **Arguments:** `divergence` — an [`AbstractFDivergence`][gpm_sde.losses.AbstractFDivergence],
    e.g. `f_divergence("kl")`.
    """

    divergence: AbstractFDivergence

    def __check_init__(self):
        if not isinstance(self.divergence, AbstractFDivergence):
            raise TypeError(
                f"`divergence` must be an f-divergence such as `f_divergence('kl')`, got "
                f"{type(self.divergence).__name__}."
            )

    def variational_bound(
        self, real: Float[ArrayLike, "*n"], fake: Float[ArrayLike, "*m"]
    ) -> Float[Array, ""]:
        r"""$F(V)$, the lower bound on $D_f(P\|Q)$ (Nowozin et al. 2016, §2.2)."""
        return _mean(self.divergence.activation(real)) - _mean(
            self.divergence.conjugate_of_activation(fake)
        )

    def discriminator_loss(self, real, fake):
        return -self.variational_bound(real, fake)

    def generator_loss(self, fake):
        return -_mean(self.divergence.conjugate_of_activation(fake))


_KINDS = ("minimax", "nonsaturating", "wgan", "hinge", "lsgan", "fgan")


def gan_loss(kind: str, **options: Any) -> AbstractGANLoss:
    r"""A GAN loss by name, called as `loss(real, fake) -> (d_loss, g_loss)`:

    - `"minimax"`: [`MinimaxGAN`][gpm_sde.losses.MinimaxGAN];
    - `"nonsaturating"`: [`NonSaturatingGAN`][gpm_sde.losses.NonSaturatingGAN];
    - `"wgan"`: [`WassersteinGAN`][gpm_sde.losses.WassersteinGAN];
    - `"hinge"`: [`HingeGAN`][gpm_sde.losses.HingeGAN];
    - `"lsgan"`: [`LeastSquaresGAN`][gpm_sde.losses.LeastSquaresGAN], options `a`, `b`, `c`;
    - `"fgan"`: [`FGAN`][gpm_sde.losses.FGAN], option `divergence` (`"kl"`, `"reverse_kl"`,
      `"js"`, `"pearson"`).
    """
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {_KINDS}, got {kind!r}.")
    allowed = {"lsgan": {"a", "b", "c"}, "fgan": {"divergence"}}.get(kind, set())
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(
            f"gan_loss({kind!r}) takes the options {sorted(allowed) or 'none'}, got "
            f"{sorted(unknown)}."
        )
    if kind == "minimax":
        return MinimaxGAN()
    if kind == "nonsaturating":
        return NonSaturatingGAN()
    if kind == "wgan":
        return WassersteinGAN()
    if kind == "hinge":
        return HingeGAN()
    if kind == "lsgan":
        return LeastSquaresGAN(**{k: float(v) for k, v in options.items()})
    divergence = options.get("divergence")
    if divergence is None:
        raise TypeError(
            "gan_loss('fgan') needs `divergence`: one of 'kl', 'reverse_kl', 'js', 'pearson'."
        )
    if isinstance(divergence, str):
        divergence = f_divergence(divergence)
    return FGAN(divergence)
