r"""Multilayer perceptrons: a time-conditioned score network, a generator and a (time-conditioned)
discriminator, each on one point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from ._common import check_event, check_size
from ._embedding import FourierEmbedding
from ._spectral import (
    NEEDS_STATE,
    apply,
    check_conditioning,
    check_flag,
    label_embedding,
    label_row,
    maybe_spectral,
)


def leaky_relu(x: Array) -> Array:
    r"""$\max(x, 0.2x)$, the discriminator activation of DCGAN (Radford et al. 2016, §3)."""
    return jax.nn.leaky_relu(x, 0.2)


class ScoreMLP(eqx.Module):
    r"""A time/σ-conditioned MLP $F_\theta(t, x) \in \mathbb{R}^d$ on one point $x \in
    \mathbb{R}^d$, conditioned through the Fourier time embedding of the score networks of
    Song et al. 2021:

    $$e = \operatorname{act}(A\,\gamma(t)),\qquad h_0 = B x,\qquad
    h_{k} = W_k\,\operatorname{act}(h_{k-1} + C_k e),\qquad
    F = W_{\rm out}\operatorname{act}(h_L),$$

    with $\gamma$ the Gaussian Fourier features of
    [`FourierEmbedding`][gpm_sde.nn.FourierEmbedding]: the time embedding is added before every
    hidden layer. The raw output is not yet a score: wrap it in a parameterisation
    ([`EpsilonParam`][gpm_sde.nn.EpsilonParam], [`X0Param`][gpm_sde.nn.X0Param],
    [`ScoreParam`][gpm_sde.nn.ScoreParam], [`EDMDenoiser`][gpm_sde.nn.EDMDenoiser]).

    **Arguments:**

    - `dim`: $d$, the data dimension.
    - `hidden`: width of the hidden layers.
    - `depth`: number $L \ge 1$ of hidden layers.
    - `embed_dim`: size of the Fourier time embedding (even).
    - `key`: PRNG key.
    - `fourier_scale`: standard deviation of the Fourier frequencies (16 for $t \in [0, 1]$,
      Song et al. 2021; about 1 for $\tfrac14\ln\sigma$).
    - `activation`: elementwise nonlinearity (SiLU by default).
    - `num_classes`: if given, the network is class-conditional: a learned label embedding
      $E_y \in \mathbb{R}^{\text{hidden}}$ is added to the time embedding,
      $e = \operatorname{act}(A\,\gamma(t) + E_y)$, with the extra index `num_classes` the
      *null label* of classifier-free training (Ho & Salimans 2022, sec. 3.2). `None` (the
      default) leaves the network unconditional and its parameters unchanged.

    Called as `net(t, x)` with a scalar `t` and `x: (dim,)`; returns `(dim,)`. A conditional
    network is called as `net(t, x, y)` with an integer label `y` in `[0, num_classes]`
    (`y = num_classes` or `y = None`: the null label); bind the label with
    [`bind_label`][gpm_sde.scores.bind_label] to get a network `(t, x)` for the
    parameterisation wrappers.
    """

    embedding: FourierEmbedding
    time_proj: eqx.nn.Linear
    label_embedding: eqx.nn.Embedding | None
    inp: eqx.nn.Linear
    conds: tuple[eqx.nn.Linear, ...]
    layers: tuple[eqx.nn.Linear, ...]
    out: eqx.nn.Linear
    dim: int = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        hidden: int,
        depth: int,
        embed_dim: int,
        *,
        key: PRNGKeyArray,
        fourier_scale: float = 16.0,
        activation: Callable[[Array], Array] = jax.nn.silu,
        num_classes: int | None = None,
    ):
        self.dim = check_size("dim", dim)
        hidden = check_size("hidden", hidden)
        depth = check_size("depth", depth)
        embed_dim = check_size("embed_dim", embed_dim, even=True, minimum=2)
        if num_classes is not None:
            num_classes = check_size("num_classes", num_classes)
        self.label_embedding = label_embedding(num_classes, hidden, key)
        keys = jr.split(key, 4 + 2 * depth)
        self.embedding = FourierEmbedding(embed_dim, key=keys[0], scale=fourier_scale)
        self.time_proj = eqx.nn.Linear(embed_dim, hidden, key=keys[1])
        self.inp = eqx.nn.Linear(dim, hidden, key=keys[2])
        self.conds = tuple(eqx.nn.Linear(hidden, hidden, key=k) for k in keys[4 : 4 + depth])
        self.layers = tuple(eqx.nn.Linear(hidden, hidden, key=k) for k in keys[4 + depth :])
        self.out = eqx.nn.Linear(hidden, dim, key=keys[3])
        self.activation = activation

    def __call__(
        self, t: Real[ArrayLike, ""], x: Float[Array, " dim"], y: Int[ArrayLike, ""] | None = None
    ) -> Float[Array, " dim"]:
        check_event("x", x, (self.dim,), "the data dimension `dim`")
        act = self.activation
        pre = self.time_proj(self.embedding(t))
        row, _ = label_row(self.label_embedding, y, None, "ScoreMLP")
        if row is not None:
            pre = pre + row
        e = act(pre)
        h = self.inp(x)
        for cond, layer in zip(self.conds, self.layers, strict=True):
            h = layer(act(h + cond(e)))
        return self.out(act(h))


class MLPGenerator(eqx.Module):
    r"""An MLP generator $x = g_\theta(z)$ from a latent $z \in \mathbb{R}^{k}$ to
    $\mathbb{R}^{d}$ (Goodfellow et al. 2014, §3), optionally class-conditional, $x =
    g_\theta(z, y)$ (Mirza & Osindero 2014):

    $$h_0 = z,\qquad h_{1} = \operatorname{act}(W_1 z + b_1 + E_y),\qquad
    h_{j} = \operatorname{act}(W_j h_{j-1} + b_j),\quad j = 2..L,\qquad
    x = \operatorname{out}(W_{\rm out} h_L + b_{\rm out}).$$

    The label row $E_y$ (absent for an unconditional generator) is exactly a first layer acting
    on the concatenation $[z; \mathrm{onehot}(y)]$, the conditional generator of Mirza &
    Osindero (the label fed to the first layer alongside the input).

    **Arguments:**

    - `latent_dim`: $k$; `out_dim`: $d$.
    - `hidden`: width; `depth`: number $L \ge 1$ of hidden layers.
    - `key`: PRNG key.
    - `activation`: hidden nonlinearity (ReLU by default).
    - `out_activation`: output map, identity by default (toy data in $\mathbb{R}^d$); pass
      `jnp.tanh` for data scaled to $[-1, 1]$.
    - `num_classes`: if given, $K$: the generator is class-conditional, with a learned
      embedding $E \in \mathbb{R}^{(K+1)\times\text{hidden}}$ whose row $K$ is the null
      label (as in [`ScoreMLP`][gpm_sde.nn.ScoreMLP]). `None` (the default) leaves the
      generator unconditional and its parameters unchanged.

    Called as `G(z)` with `z: (latent_dim,)`, or `G(z, y)` with an integer label `y` in
    $[0, K]$ (`y = None`: the null label); returns `(out_dim,)`.
    """

    layers: tuple[eqx.nn.Linear, ...]
    out: eqx.nn.Linear
    label_embedding: eqx.nn.Embedding | None
    latent_dim: int = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)
    out_activation: Callable[[Array], Array] | None = eqx.field(static=True)

    def __init__(
        self,
        latent_dim: int,
        out_dim: int,
        hidden: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        activation: Callable[[Array], Array] = jax.nn.relu,
        out_activation: Callable[[Array], Array] | None = None,
        num_classes: int | None = None,
    ):
        self.latent_dim = check_size("latent_dim", latent_dim)
        out_dim = check_size("out_dim", out_dim)
        hidden = check_size("hidden", hidden)
        depth = check_size("depth", depth)
        if num_classes is not None:
            num_classes = check_size("num_classes", num_classes)
        self.label_embedding = label_embedding(num_classes, hidden, key)
        keys = jr.split(key, depth + 1)
        sizes = [latent_dim] + [hidden] * depth
        self.layers = tuple(
            eqx.nn.Linear(a, b, key=k)
            for a, b, k in zip(sizes[:-1], sizes[1:], keys[:-1], strict=True)
        )
        self.out = eqx.nn.Linear(hidden, out_dim, key=keys[-1])
        self.activation = activation
        self.out_activation = out_activation

    def __call__(
        self, z: Float[Array, " latent_dim"], y: Int[ArrayLike, ""] | None = None
    ) -> Float[Array, " out_dim"]:
        check_event("z", z, (self.latent_dim,), "the latent dimension `latent_dim`")
        row, _ = label_row(self.label_embedding, y, None, "generator")
        h = z
        for j, layer in enumerate(self.layers):
            pre = layer(h)
            h = self.activation(pre if (j or row is None) else pre + row)
        x = self.out(h)
        return x if self.out_activation is None else self.out_activation(x)


class MLPDiscriminator(eqx.Module):
    r"""An MLP discriminator returning a scalar logit, $D(x)$ or, time-conditioned, $D(s, x)$
    (the time-dependent discriminator of Discriminator Flow, Franceschi et al. 2023, §4.2),
    optionally class-conditional, $D(x, y)$ or $D(s, x, y)$:

    $$h_0 = \operatorname{act}(B x + C_0 e + c_y),\qquad h_{j} = \operatorname{act}(W_j h_{j-1}
    + b_j + C_j e),\qquad \phi(x) = h_L,\qquad D = \psi(\phi(x)) + p_y,\quad
    \psi(h) = w^\top h + b,$$

    with $e = \operatorname{act}(A\,\gamma(s))$ from the Fourier features of $s$ when
    `time_conditioned=True`, and $e = 0$ (no conditioning layers) otherwise. The label enters
    through a learned embedding $E \in \mathbb{R}^{(K+1)\times\text{hidden}}$ (row $K$: the null
    label):

    - `conditioning="concat"`: $c_y = E_y$, $p_y = 0$: exactly a first layer acting on the
      concatenation $[x; \mathrm{onehot}(y)]$, the conditional discriminator of Mirza &
      Osindero 2014;
    - `conditioning="projection"`: $c_y = 0$, $p_y = \langle E_y, \phi(x)\rangle$, the
      projection discriminator $D(x, y) = \psi(\phi(x)) + y^\top V\phi(x)$ of Miyato & Koyama
      2018 (its logit form, with $V$ the embedding and $y$ one-hot).

    No normalisation layers, so gradient penalties (R1, WGAN-GP) act on a per-point function.
    With `spectral_norm=True` every weight matrix ($B$, $W_j$, $w$, the time layers $A$,
    $C_j$, and $E$) is divided by an estimate of its largest singular value (Miyato et al.
    2018), each an `eqx.nn.SpectralNorm` with one power iteration per call: the network is
    then stateful.

    **Arguments:**

    - `in_dim`: data dimension; `hidden`: width; `depth`: number $L \ge 1$ of hidden layers.
    - `key`: PRNG key.
    - `time_conditioned`: whether the call is `D(s, x)` (True) or `D(x)` (False).
    - `embed_dim`, `fourier_scale`: the Fourier embedding of $s$ (time-conditioned only).
    - `activation`: nonlinearity (LeakyReLU(0.2) by default, as in DCGAN).
    - `num_classes`: $K$ for a class-conditional discriminator; `None` (the default) leaves it
      unconditional and its parameters unchanged.
    - `conditioning`: `"projection"` (default) or `"concat"`, as above.
    - `spectral_norm`: whether the weights are spectrally normalised. Build such a network
      with `D, state = eqx.nn.make_with_state(MLPDiscriminator)(..., spectral_norm=True)` and
      call it as `D(..., state=state) -> (logit, state)`;
      [`FrozenState`][gpm_sde.nn.FrozenState] binds a state for inference.
    - `power_iterations`: power iterations per call of each normalised layer (1 by default;
      more when the weights change faster than one iteration per call tracks their top
      singular vectors, e.g. a near-degenerate top singular value at a high learning rate).

    Returns a scalar `()`, a logit for the GAN losses or a critic value for WGAN (with
    `spectral_norm=True`: `(logit, state)`). A label `y` is an integer in $[0, K]$, `None`
    being the null label.
    """

    inp: Any
    layers: tuple[Any, ...]
    out: Any
    embedding: FourierEmbedding | None
    time_proj: Any
    conds: tuple[Any, ...] | None
    label_embedding: Any
    in_dim: int = eqx.field(static=True)
    time_conditioned: bool = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)
    conditioning: str = eqx.field(static=True)
    spectral_norm: bool = eqx.field(static=True)

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        time_conditioned: bool = False,
        embed_dim: int = 32,
        fourier_scale: float = 16.0,
        activation: Callable[[Array], Array] = leaky_relu,
        num_classes: int | None = None,
        conditioning: str = "projection",
        spectral_norm: bool = False,
        power_iterations: int = 1,
    ):
        self.in_dim = check_size("in_dim", in_dim)
        hidden = check_size("hidden", hidden)
        depth = check_size("depth", depth)
        check_flag("time_conditioned", time_conditioned)
        sn = self.spectral_norm = check_flag("spectral_norm", spectral_norm)
        self.conditioning = check_conditioning(conditioning)
        if num_classes is not None:
            num_classes = check_size("num_classes", num_classes)
        iters = check_size("power_iterations", power_iterations)
        self.label_embedding = label_embedding(num_classes, hidden, key, sn, iters)
        keys = jr.split(key, 2 * depth + 4)
        sn_keys = iter(jr.split(jr.fold_in(key, 104729), 2 * depth + 4))

        def wrap(layer: Any) -> Any:
            return maybe_spectral(layer, sn, next(sn_keys), iters)

        self.inp = wrap(eqx.nn.Linear(in_dim, hidden, key=keys[0]))
        self.layers = tuple(wrap(eqx.nn.Linear(hidden, hidden, key=k)) for k in keys[1:depth])
        self.out = wrap(eqx.nn.Linear(hidden, "scalar", key=keys[depth]))
        self.time_conditioned = time_conditioned
        self.activation = activation
        if time_conditioned:
            embed_dim = check_size("embed_dim", embed_dim, even=True, minimum=2)
            self.embedding = FourierEmbedding(embed_dim, key=keys[depth + 1], scale=fourier_scale)
            self.time_proj = wrap(eqx.nn.Linear(embed_dim, hidden, key=keys[depth + 2]))
            self.conds = tuple(
                wrap(eqx.nn.Linear(hidden, hidden, key=k)) for k in keys[depth + 3 : 2 * depth + 3]
            )
        else:
            self.embedding = self.time_proj = self.conds = None

    @overload
    def __call__(
        self,
        s_or_x: Real[ArrayLike, ""] | Float[Array, " in_dim"],
        x: Float[Array, " in_dim"] | Int[ArrayLike, ""] | None = None,
        y: Int[ArrayLike, ""] | None = None,
        *,
        state: None = None,
    ) -> Float[Array, ""]: ...

    @overload
    def __call__(
        self,
        s_or_x: Real[ArrayLike, ""] | Float[Array, " in_dim"],
        x: Float[Array, " in_dim"] | Int[ArrayLike, ""] | None = None,
        y: Int[ArrayLike, ""] | None = None,
        *,
        state: eqx.nn.State,
    ) -> tuple[Float[Array, ""], eqx.nn.State]: ...

    def __call__(
        self,
        s_or_x: Real[ArrayLike, ""] | Float[Array, " in_dim"],
        x: Float[Array, " in_dim"] | Int[ArrayLike, ""] | None = None,
        y: Int[ArrayLike, ""] | None = None,
        *,
        state: eqx.nn.State | None = None,
    ) -> Float[Array, ""] | tuple[Float[Array, ""], eqx.nn.State]:
        s, x, y = _split_labelled_call(
            self.time_conditioned, self.label_embedding is not None, s_or_x, x, y
        )
        check_event("x", x, (self.in_dim,), "the data dimension `in_dim`")
        check_state(self.spectral_norm, state)
        act = self.activation
        if self.embedding is None or self.time_proj is None or self.conds is None:
            shifts: list[Any] = [0.0] * (len(self.layers) + 1)
        else:
            pre, state = apply(self.time_proj, self.embedding(s), state)
            e = act(pre)
            shifts = []
            for cond in self.conds:
                c, state = apply(cond, e, state)
                shifts.append(c)
        row, state = label_row(self.label_embedding, y, state, "discriminator")
        pre, state = apply(self.inp, x, state)
        if row is not None and self.conditioning == "concat":
            pre = pre + row
        h = act(pre + shifts[0])
        for layer, shift in zip(self.layers, shifts[1:], strict=True):
            pre, state = apply(layer, h, state)
            h = act(pre + shift)
        out, state = apply(self.out, h, state)
        if row is not None and self.conditioning == "projection":
            out = out + jnp.dot(row, h)
        if self.spectral_norm and state is not None:
            return out, state
        return out


def check_state(spectral_norm: bool, state: Any) -> None:
    if spectral_norm and state is None:
        raise ValueError(NEEDS_STATE)
    if not spectral_norm and state is not None:
        raise ValueError(
            "`state` was given but this network is not spectrally normalised; call it without "
            "`state`, or build it with `spectral_norm=True`."
        )


def _split_labelled_call(
    time_conditioned: bool, conditional: bool, a: Any, b: Any, c: Any
) -> tuple[Any, Array, Any]:
    """`(s, x, y)` from `D(x)`, `D(x, y)`, `D(s, x)` or `D(s, x, y)`."""
    if time_conditioned:
        s, x = _split_call(True, a, b)
        y = c
    else:
        if c is not None:
            raise TypeError(
                "this discriminator is not time-conditioned: call it as `D(x)` or, "
                "class-conditional, `D(x, y)`; got three arguments."
            )
        if conditional:
            s, x, y = None, a, b
        else:
            s, x = _split_call(False, a, b)
            y = None
    if y is not None and not conditional:
        raise ValueError(
            "a label `y` was given but this discriminator is unconditional; build it with "
            "`num_classes=...` to condition on a label."
        )
    return s, x, y


def _split_call(time_conditioned: bool, first: Any, second: Any) -> tuple[Any, Array]:
    """`(s, x)` from a `D(x)` or `D(s, x)` call, with an error naming the right call."""
    if time_conditioned:
        if second is None:
            raise TypeError(
                "this discriminator is time-conditioned (`time_conditioned=True`): call it as "
                "`D(s, x)` with a scalar time `s`, got only one argument."
            )
        return first, second
    if second is not None:
        raise TypeError(
            "this discriminator is not time-conditioned: call it as `D(x)`, got two arguments; "
            "build it with `time_conditioned=True` to call `D(s, x)`."
        )
    return None, first
