r"""Small step-conditioned MLPs for Denoising Diffusion GAN (Xiao, Kreis & Vahdat 2022): the
generator $G(x_n, z, n) \approx x_0$ and the discriminator $D(x_{n-1}, x_n, n)$."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from ._common import check_event, check_size
from ._mlp import leaky_relu


def _embeddings(num_steps: int, hidden: int, count: int, key: PRNGKeyArray) -> tuple:
    keys = jr.split(key, count)
    return tuple(eqx.nn.Embedding(num_steps + 1, hidden, key=k) for k in keys)


class DDGANGenerator(eqx.Module):
    r"""The generator of Denoising Diffusion GAN as a step-conditioned MLP: from a noisy point
    $x_n$, a latent $z$ and the 1-based step $n$, a prediction of the clean point,

    $$h_0 = \operatorname{act}\big(B\,[x_n; z] + e_0(n)\big),\qquad
    h_j = \operatorname{act}\big(W_j h_{j-1} + e_j(n)\big),\qquad
    \hat x_0 = W_{\rm out} h_L + b_{\rm out},$$

    with learned per-step embeddings $e_j(n) \in \mathbb{R}^{\text{hidden}}$ (a table of
    $T + 1$ rows per layer). The fake $x_{n-1}$ is then drawn from the forward posterior at
    $\hat x_0$ ([`ddgan_posterior_sample`][gpm_sde.samplers.ddgan_posterior_sample]), as in
    Xiao et al.'s $x_0$-parameterisation (their generator is a U-Net with the latent entering
    through adaptive group normalisation; this is the small-data version).

    **Arguments:**

    - `dim`: $d$, the data dimension; `latent_dim`: $k$, the size of $z$.
    - `num_steps`: $T$, the number of denoising steps of the chain.
    - `hidden`: width; `depth`: number $L \ge 1$ of hidden layers.
    - `key`: PRNG key.
    - `activation`: nonlinearity (SiLU by default).

    Called as `G(x_n, z, n)` with `x_n: (dim,)`, `z: (latent_dim,)` and an integer `n` in
    $1..T$; returns $\hat x_0$, `(dim,)`.
    """

    inp: eqx.nn.Linear
    layers: tuple[eqx.nn.Linear, ...]
    steps: tuple[eqx.nn.Embedding, ...]
    out: eqx.nn.Linear
    dim: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        latent_dim: int,
        num_steps: int,
        hidden: int = 128,
        depth: int = 3,
        *,
        key: PRNGKeyArray,
        activation: Callable[[Array], Array] = jax.nn.silu,
    ):
        self.dim = check_size("dim", dim)
        self.latent_dim = check_size("latent_dim", latent_dim)
        self.num_steps = check_size("num_steps", num_steps)
        hidden = check_size("hidden", hidden)
        depth = check_size("depth", depth)
        keys = jr.split(key, depth + 2)
        self.inp = eqx.nn.Linear(dim + latent_dim, hidden, key=keys[0])
        self.layers = tuple(eqx.nn.Linear(hidden, hidden, key=k) for k in keys[2 : depth + 1])
        self.steps = _embeddings(num_steps, hidden, depth, jr.fold_in(key, 1))
        self.out = eqx.nn.Linear(hidden, dim, key=keys[1])
        self.activation = activation

    def __call__(
        self, x_n: Float[Array, " dim"], z: Float[Array, " latent_dim"], n: Int[ArrayLike, ""]
    ) -> Float[Array, " dim"]:
        check_event("x_n", x_n, (self.dim,), "the data dimension `dim`")
        check_event("z", z, (self.latent_dim,), "the latent dimension `latent_dim`")
        n = jnp.asarray(n)
        act = self.activation
        h = act(self.inp(jnp.concatenate([x_n, z.astype(x_n.dtype)])) + self.steps[0](n))
        for layer, emb in zip(self.layers, self.steps[1:], strict=True):
            h = act(layer(h) + emb(n))
        return self.out(h)


class DDGANDiscriminator(eqx.Module):
    r"""The discriminator of Denoising Diffusion GAN as a step-conditioned MLP on a pair: is
    $x_{n-1}$ a real denoising of $x_n$ at step $n$?

    $$h_0 = \operatorname{act}\big(B\,[x_{n-1}; x_n] + e_0(n)\big),\qquad
    h_j = \operatorname{act}\big(W_j h_{j-1} + e_j(n)\big),\qquad D = w^\top h_L + b,$$

    a scalar logit, with learned per-step embeddings $e_j(n)$ and LeakyReLU(0.2) (as their
    discriminators). No normalisation layers, so R1 acts on a per-pair function.

    **Arguments:**

    - `dim`: $d$; `num_steps`: $T$; `hidden`: width; `depth`: number $L \ge 1$ of hidden
      layers; `key`: PRNG key; `activation`: nonlinearity.

    Called as `D(x_prev, x_n, n)` with `x_prev, x_n: (dim,)` and an integer `n` in $1..T$;
    returns a scalar `()`.
    """

    inp: eqx.nn.Linear
    layers: tuple[eqx.nn.Linear, ...]
    steps: tuple[eqx.nn.Embedding, ...]
    out: eqx.nn.Linear
    dim: int = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        num_steps: int,
        hidden: int = 128,
        depth: int = 3,
        *,
        key: PRNGKeyArray,
        activation: Callable[[Array], Array] = leaky_relu,
    ):
        self.dim = check_size("dim", dim)
        self.num_steps = check_size("num_steps", num_steps)
        hidden = check_size("hidden", hidden)
        depth = check_size("depth", depth)
        keys = jr.split(key, depth + 2)
        self.inp = eqx.nn.Linear(2 * dim, hidden, key=keys[0])
        self.layers = tuple(eqx.nn.Linear(hidden, hidden, key=k) for k in keys[2 : depth + 1])
        self.steps = _embeddings(num_steps, hidden, depth, jr.fold_in(key, 1))
        self.out = eqx.nn.Linear(hidden, "scalar", key=keys[1])
        self.activation = activation

    def __call__(
        self, x_prev: Float[Array, " dim"], x_n: Float[Array, " dim"], n: Int[ArrayLike, ""]
    ) -> Float[Array, ""]:
        check_event("x_prev", x_prev, (self.dim,), "the data dimension `dim`")
        check_event("x_n", x_n, (self.dim,), "the data dimension `dim`")
        n = jnp.asarray(n)
        act = self.activation
        h = act(self.inp(jnp.concatenate([x_prev, x_n])) + self.steps[0](n))
        for layer, emb in zip(self.layers, self.steps[1:], strict=True):
            h = act(layer(h) + emb(n))
        return self.out(h)
