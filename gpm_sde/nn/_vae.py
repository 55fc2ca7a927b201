r"""Variational autoencoder networks on one point: a Gaussian encoder $q_\phi(z \mid x)$, a
deterministic encoder (for VQ-VAE), and Gaussian and Bernoulli decoders $p_\theta(x \mid z)$,
plus the two helpers that move a dataset into latent space and a latent cloud back."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._common import check_size

Shape = int | tuple[int, ...]


def _shape(name: str, value: Any) -> tuple[int, ...]:
    """`value` (an int or a tuple of ints) as a shape of positive sizes."""
    items: Any = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        shape = tuple(items)
    except TypeError:
        raise TypeError(
            f"`{name}` must be an int or a tuple of ints (the shape of one point), got "
            f"{type(value).__name__}; pass e.g. {name}=64 or {name}=(1, 8, 8)."
        ) from None
    if not shape:
        raise ValueError(f"`{name}` must have at least one axis, got (); pass e.g. {name}=2.")
    return tuple(check_size(f"{name}[{i}]", s) for i, s in enumerate(shape))


def _check_point(name: str, x: Any, shape: tuple[int, ...], what: str) -> Array:
    x = jnp.asarray(x)
    if x.shape != shape:
        raise ValueError(
            f"`{name}` must be one point of shape {shape} ({what}), got shape {x.shape}; "
            f"vmap over a batch, e.g. `jax.vmap(encoder)(x)`."
        )
    return x.reshape(-1)


def _mlp(
    n_in: int, n_out: int, hidden: int, depth: int, activation: Callable, key: PRNGKeyArray
) -> eqx.nn.MLP:
    hidden = check_size("hidden", hidden)
    depth = check_size("depth", depth, minimum=0)
    return eqx.nn.MLP(n_in, n_out, hidden, depth, activation=activation, key=key)


class MLPEncoder(eqx.Module):
    r"""A deterministic MLP encoder $z_e = E_\phi(x)$ from one point $x$ of shape `in_shape`
    to one latent of shape `out_shape` (flattened in between): the encoder of a VQ-VAE
    (van den Oord et al. 2017, §3.1), whose output, e.g. of shape `(positions, code_dim)`,
    is quantised vector by vector along its last axis.

    **Arguments:**

    - `in_shape`: shape of one data point (an int for a vector).
    - `out_shape`: shape of one latent.
    - `hidden`: width; `depth`: number of hidden layers ($0$: an affine map).
    - `key`: PRNG key.
    - `activation`: hidden nonlinearity (SiLU by default).
    """

    mlp: eqx.nn.MLP
    in_shape: tuple[int, ...] = eqx.field(static=True)
    out_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        in_shape: Shape,
        out_shape: Shape,
        hidden: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        activation: Callable[[Array], Array] = jax.nn.silu,
    ):
        self.in_shape = _shape("in_shape", in_shape)
        self.out_shape = _shape("out_shape", out_shape)
        n_in, n_out = math.prod(self.in_shape), math.prod(self.out_shape)
        self.mlp = _mlp(n_in, n_out, hidden, depth, activation, key)

    def __call__(self, x: Float[ArrayLike, "*shape"]) -> Float[Array, "*latent"]:
        h = _check_point("x", x, self.in_shape, "the encoder's `in_shape`")
        return self.mlp(h).reshape(self.out_shape)


class GaussianEncoder(eqx.Module):
    r"""The diagonal Gaussian encoder of a VAE (Kingma & Welling 2014, §3 and App. C.2),

    $$q_\phi(z \mid x) = \mathcal{N}\big(z;\ \mu_\phi(x),\ \operatorname{diag}\sigma_\phi(x)^2
    \big),\qquad (\mu_\phi, \log\sigma_\phi)(x) = \mathrm{MLP}_\phi(x),$$

    sampled by the reparameterisation $z = \mu_\phi(x) + \sigma_\phi(x)\odot\varepsilon$,
    $\varepsilon \sim \mathcal{N}(0, I)$ (their eq. 10), which the losses
    [`elbo`][gpm_sde.losses.elbo] and [`iwae_bound`][gpm_sde.losses.iwae_bound] do.

    **Arguments:**

    - `in_shape`: shape of one data point (an int for a vector; images are flattened).
    - `latent_dim`: the size $k$ of $z$.
    - `hidden`: width; `depth`: number of hidden layers ($0$: an affine map, as in
      probabilistic PCA).
    - `key`: PRNG key.
    - `activation`: hidden nonlinearity (SiLU by default).

    Called as `encoder(x)` on one point; returns `(mean, log_std)`, each `(latent_dim,)`.
    """

    mlp: eqx.nn.MLP
    in_shape: tuple[int, ...] = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)

    def __init__(
        self,
        in_shape: Shape,
        latent_dim: int,
        hidden: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        activation: Callable[[Array], Array] = jax.nn.silu,
    ):
        self.in_shape = _shape("in_shape", in_shape)
        self.latent_dim = check_size("latent_dim", latent_dim)
        n_in = math.prod(self.in_shape)
        self.mlp = _mlp(n_in, 2 * self.latent_dim, hidden, depth, activation, key)

    def __call__(
        self, x: Float[ArrayLike, "*shape"]
    ) -> tuple[Float[Array, " latent_dim"], Float[Array, " latent_dim"]]:
        h = self.mlp(_check_point("x", x, self.in_shape, "the encoder's `in_shape`"))
        return h[: self.latent_dim], h[self.latent_dim :]


class GaussianDecoder(eqx.Module):
    r"""A Gaussian decoder (Kingma & Welling 2014, App. C.2) with a learnt scale,

    $$p_\theta(x \mid z) = \mathcal{N}\big(x;\ \mu_\theta(z),\ \sigma_\theta^2 I\big),\qquad
    \log p_\theta(x \mid z) = -\sum_i \Big[\frac{(x_i - \mu_{\theta,i}(z))^2}{2\sigma_i^2}
    + \log\sigma_i + \tfrac12\log 2\pi\Big],$$

    $\mu_\theta$ an MLP and $\log\sigma$ a parameter `log_std`, one shared value (default)
    or one per entry (`per_dim_scale=True`). With `depth=0` it is the linear-Gaussian model
    of probabilistic PCA, $x = Wz + \mu + \sigma\epsilon$ (Tipping & Bishop 1999, eq. 2).

    **Arguments:**

    - `latent_shape`: shape of one latent (an int for a vector; flattened on input).
    - `out_shape`: shape of one data point.
    - `hidden`: width; `depth`: number of hidden layers ($0$: an affine map).
    - `key`: PRNG key.
    - `log_std`: the initial $\log\sigma$.
    - `per_dim_scale`: one $\sigma_i$ per entry of $x$ instead of a shared one.
    - `activation`: hidden nonlinearity (SiLU by default).

    Called as `decoder(z)`, it returns the mean $\mu_\theta(z)$ (the decoded point);
    `decoder.log_prob(z, x)` is $\log p_\theta(x \mid z)$ in nats.
    """

    mlp: eqx.nn.MLP
    log_std: Float[Array, "*scale"]
    latent_shape: tuple[int, ...] = eqx.field(static=True)
    out_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        latent_shape: Shape,
        out_shape: Shape,
        hidden: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        log_std: float = 0.0,
        per_dim_scale: bool = False,
        activation: Callable[[Array], Array] = jax.nn.silu,
    ):
        self.latent_shape = _shape("latent_shape", latent_shape)
        self.out_shape = _shape("out_shape", out_shape)
        n_in, n_out = math.prod(self.latent_shape), math.prod(self.out_shape)
        self.mlp = _mlp(n_in, n_out, hidden, depth, activation, key)
        self.log_std = jnp.full(
            self.out_shape if per_dim_scale else (), log_std, jnp.result_type(float)
        )

    def __call__(self, z: Float[Array, "*latent"]) -> Float[Array, "*shape"]:
        h = _check_point("z", z, self.latent_shape, "the decoder's `latent_shape`")
        return self.mlp(h).reshape(self.out_shape)

    def log_prob(
        self, z: Float[Array, "*latent"], x: Float[ArrayLike, "*shape"]
    ) -> Float[Array, ""]:
        """$\\log p_\\theta(x \\mid z)$ of one point `x` given one latent `z`, in nats."""
        mean = self(z)
        log_std = jnp.broadcast_to(self.log_std, self.out_shape)
        r = (jnp.asarray(x) - mean) * jnp.exp(-log_std)
        return -jnp.sum(0.5 * r**2 + log_std + 0.5 * math.log(2 * math.pi))


class BernoulliDecoder(eqx.Module):
    r"""A Bernoulli decoder for binary data (Kingma & Welling 2014, App. C.1),

    $$p_\theta(x \mid z) = \prod_i \pi_i^{x_i}(1 - \pi_i)^{1 - x_i},\quad
    \pi = \operatorname{sigmoid}(\ell_\theta(z)),\qquad
    \log p_\theta(x \mid z) = \sum_i \big[x_i\ell_i - \log(1 + e^{\ell_i})\big],$$

    computed from the logits $\ell_\theta$ (an MLP) without forming $\pi$, so it stays finite
    for saturated logits.

    **Arguments:**

    - `latent_shape`: shape of one latent; `out_shape`: shape of one data point, entries in
      $\{0, 1\}$ (or in $[0, 1]$, read as the cross-entropy).
    - `hidden`: width; `depth`: number of hidden layers ($0$: an affine map).
    - `key`: PRNG key.
    - `activation`: hidden nonlinearity (SiLU by default).

    Called as `decoder(z)`, it returns the mean $\pi$; `decoder.logits(z)` the logits and
    `decoder.log_prob(z, x)` $\log p_\theta(x \mid z)$ in nats.
    """

    mlp: eqx.nn.MLP
    latent_shape: tuple[int, ...] = eqx.field(static=True)
    out_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        latent_shape: Shape,
        out_shape: Shape,
        hidden: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        activation: Callable[[Array], Array] = jax.nn.silu,
    ):
        self.latent_shape = _shape("latent_shape", latent_shape)
        self.out_shape = _shape("out_shape", out_shape)
        n_in, n_out = math.prod(self.latent_shape), math.prod(self.out_shape)
        self.mlp = _mlp(n_in, n_out, hidden, depth, activation, key)

    def logits(self, z: Float[Array, "*latent"]) -> Float[Array, "*shape"]:
        """The logits $\\ell_\\theta(z)$ of one latent."""
        h = _check_point("z", z, self.latent_shape, "the decoder's `latent_shape`")
        return self.mlp(h).reshape(self.out_shape)

    def __call__(self, z: Float[Array, "*latent"]) -> Float[Array, "*shape"]:
        return jax.nn.sigmoid(self.logits(z))

    def log_prob(
        self, z: Float[Array, "*latent"], x: Float[ArrayLike, "*shape"]
    ) -> Float[Array, ""]:
        """$\\log p_\\theta(x \\mid z)$ of one point `x` given one latent `z`, in nats."""
        logits = self.logits(z)
        return jnp.sum(jnp.asarray(x) * logits - jax.nn.softplus(logits))


def _batched(fn: Callable[[Array], Any], x: Array, batch_size: int | None) -> Any:
    if batch_size is None or x.shape[0] <= batch_size:
        return jax.vmap(fn)(x)
    return jax.lax.map(fn, x, batch_size=batch_size)


def latent_codes(
    encoder: Callable[[Array], Any],
    x: Float[ArrayLike, " n *shape"],
    *,
    batch_size: int | None = None,
) -> Float[Array, " n *latent"]:
    r"""The mean codes $z_i = \mu_\phi(x_i)$ of a dataset: the cloud on which a latent
    diffusion or a latent Score GAN trains (latent diffusion, Rombach et al. 2022, §3: the
    generative model is fitted to the encoder's codes of the data, then decoded).

    The mean, not a draw of $q_\phi(z \mid x)$, so the codes are a fixed array;
    for a [`GaussianEncoder`][gpm_sde.nn.GaussianEncoder] it is the first output, for a
    deterministic encoder (such as [`MLPEncoder`][gpm_sde.nn.MLPEncoder]) the output itself.

    **Arguments:**

    - `encoder`: `encoder(x)` on one point, returning `(mean, log_std)` or a latent array.
    - `x`: the data, `(n, *shape)`.
    - `batch_size`: encode this many points at a time (`None`: all at once).

    Returns the codes `(n, *latent)`, e.g. `(n, latent_dim)`: ready for
    [`fit_score`][gpm_sde.train.fit_score] or
    [`train_score_gan`][gpm_sde.train.train_score_gan] as data. A latent diffusion in a few
    lines:

    ```python
    (encoder, decoder), _ = train.fit_vae(encoder, decoder, x, key, steps=5000)
    codes = nn.latent_codes(encoder, x)
    process = gpm_sde.vp()
    score = nn.EpsilonParam(nn.ScoreMLP(codes.shape[1], 256, 3, 32, key=k1), process.sigma)
    score, _ = train.fit_score(score, process, codes, k2, steps=5000)
    z = samplers.reverse_sde_sample(process, score, k3, 1000, codes.shape[1:], steps=200).x
    images = nn.decode_latents(decoder, z)
    ```
    """

    def mean(point: Array) -> Array:
        out = encoder(point)
        return out[0] if isinstance(out, tuple) else out

    return _batched(mean, jnp.asarray(x), batch_size)


def decode_latents(
    decoder: Callable[[Array], Array],
    z: Float[ArrayLike, " n *latent"],
    *,
    batch_size: int | None = None,
) -> Float[Array, " n *shape"]:
    r"""Decode a cloud of latents to data space: $x_i = \mathbb{E}_{p_\theta}[x \mid z_i]$,
    the decoder's mean (`decoder(z)`), as latent diffusion decodes its samples (Rombach et
    al. 2022, §3).

    **Arguments:**

    - `decoder`: `decoder(z)` on one latent, e.g. a
      [`GaussianDecoder`][gpm_sde.nn.GaussianDecoder].
    - `z`: the latent cloud `(n, *latent)`, e.g. the samples of a sampler run on codes.
    - `batch_size`: decode this many latents at a time (`None`: all at once).

    Returns the decoded points `(n, *shape)`.
    """
    return _batched(decoder, jnp.asarray(z), batch_size)
