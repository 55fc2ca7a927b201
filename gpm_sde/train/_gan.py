r"""GANs: [`GANState`][gpm_sde.train.GANState], [`gan_init`][gpm_sde.train.gan_init],
[`gan_make_step`][gpm_sde.train.gan_make_step] (alternating discriminator and generator
descents for every GAN loss) and the loop over them, [`train_gan`][gpm_sde.train.train_gan];
class-conditional GANs (`labels=`), spectrally normalised (stateful) discriminators
(`d_state`) and the adaptive instance noise of Diffusion-GAN
([`InstanceNoise`][gpm_sde.train.InstanceNoise])."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, Unpack

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from .._checks import check_positive, check_scalar
from ..losses import AbstractGANLoss, clip_weights, gan_loss, gradient_penalty, r1_penalty
from ..nn import FrozenState
from ..processes import AbstractLinearProcess
from ._common import (
    EMA,
    Trainable,
    as_labeled_sampler,
    as_sampler,
    check_batch_size,
    check_ema,
    check_optimizer,
    draw_latents,
    ema_init,
    ema_update,
    float_dtype,
    latent_shape,
    opt_init,
    opt_step,
    trainable_mask,
    value_and_grad,
)
from ._loop import LoopOptions, check_steps, run_loop

_G = TypeVar("_G")
Penalty = str | None  # "gp", "r1" or None, checked by `check_penalty`


def as_gan_loss(loss: Any) -> AbstractGANLoss:
    """A GAN loss object from a name of [`gan_loss`][gpm_sde.losses.gan_loss] or itself."""
    if isinstance(loss, AbstractGANLoss):
        return loss
    if isinstance(loss, str):
        try:
            return gan_loss(loss)
        except ValueError as err:
            raise ValueError(
                f"`loss` must be a loss name accepted by `gan_loss` or a GAN loss object; {err}"
            ) from err
    raise TypeError(
        f"`loss` must be a loss name such as 'nonsaturating' or 'wgan', or a "
        f"gpm_sde.losses GAN loss object, got {type(loss).__name__}."
    )


def check_penalty(penalty: Any, weight: Any) -> None:
    if penalty not in ("gp", "r1", None):
        raise ValueError(
            f"`penalty` must be 'gp' (WGAN-GP interpolation penalty), 'r1' or None, got "
            f"{penalty!r}."
        )
    if not float(weight) >= 0.0:
        raise ValueError(f"`penalty_weight` must be >= 0, got {weight!r}.")


def penalty_term(
    penalty: Penalty, weight: float, d: Any, real: Any, fake: Any, key: PRNGKeyArray
) -> Any:
    """The regulariser added to the discriminator loss (0 when `penalty` is None)."""
    if penalty == "gp":
        return gradient_penalty(d, real, fake, key, lam=weight)
    if penalty == "r1":
        return r1_penalty(d, real, gamma=weight)
    return jax.numpy.zeros((), real.dtype)


class InstanceNoise(eqx.Module):
    r"""The adaptive instance noise of Diffusion-GAN (Wang et al. 2022), the `instance_noise=`
    option of [`train_gan`][gpm_sde.train.train_gan]. The discriminator sees real and
    generated points diffused by a linear forward process to a random time,

    $$x_t = \alpha(t)\,x + \sigma(t)\,\varepsilon,\qquad \tilde x_t = \alpha(t)\,G(z) +
    \sigma(t)\,\tilde\varepsilon,\qquad t \sim \mathcal{U}[0, T],\quad
    \varepsilon, \tilde\varepsilon \sim \mathcal{N}(0, I),$$

    one $t$ per (real, generated) pair, and as $D(t, x_t)$ when the discriminator is
    time-conditioned (`discriminator.time_conditioned`), $D(x_t)$ otherwise. The generator's
    gradient flows through the noising of $G(z)$. After each step the diffusion length $T$
    adapts to the discriminator's overfitting statistic on the real batch,

    $$r_d = \mathbb{E}\,\operatorname{sign}\big(D(x_t) - \tau\big),\qquad
    T \leftarrow \operatorname{clip}\big(T + \operatorname{sign}(r_d - d_{\rm target})\,C,\;
    0,\; T_{\max}\big),$$

    with $\tau = 0$ on logits (Wang et al. write $\operatorname{sign}(D - \tfrac12)$ on
    probabilities, the same test; their official code, `diffusion-stylegan2`, takes the sign
    of the real logits and moves a fraction $p$ by $\operatorname{sign}(r_d -
    d_{\rm target})$ times a fixed amount every few minibatches, with
    $T = T_{\min} + \operatorname{round}(p\,(T_{\max} - T_{\min}))$ steps of a discrete
    chain). Here, a continuous-time rendering: $t$ is a time of `process`, uniform on
    $[0, T]$ (the official code offers uniform or "priority" sampling of the step), one $t$
    per (real, generated) pair, and $T$ moves by $C$ after every step.

    **Arguments:**

    - `process`: a linear forward process, e.g. `gpm_sde.vp()`.
    - `t_max`: $T_{\max} \le$ `process.T`, the longest diffusion.
    - `d_target`: $d_{\rm target}$ (0.6 by default).
    - `rate`: $C$, the change of $T$ per step.
    - `t_init`: the initial length $T_0 \in [0, T_{\max}]$ (0: no noise at first).
    - `threshold`: $\tau$, the discriminator output counted as undecided (0 on logits; 0.5 for
      an LSGAN with 0-1 coding).
    """

    process: AbstractLinearProcess
    t_max: float
    d_target: float = 0.6
    rate: float = 0.01
    t_init: float = 0.0
    threshold: float = 0.0

    def __check_init__(self):
        if not isinstance(self.process, AbstractLinearProcess):
            raise TypeError(
                f"`process` must be a linear forward process such as `gpm_sde.vp()`, got "
                f"{type(self.process).__name__}."
            )
        t_end = float(self.process.T)
        if not 0.0 < float(self.t_max) <= t_end:
            raise ValueError(
                f"`t_max` must be in (0, process.T = {t_end}], got {self.t_max!r}; pass e.g. "
                f"t_max={t_end}."
            )
        if not 0.0 <= float(self.t_init) <= float(self.t_max):
            raise ValueError(f"`t_init` must be in [0, t_max = {self.t_max}], got {self.t_init!r}.")
        if not float(self.rate) > 0.0:
            raise ValueError(f"`rate` must be > 0 (the change of T per step), got {self.rate!r}.")
        if not -1.0 <= float(self.d_target) <= 1.0:
            raise ValueError(
                f"`d_target` must be in [-1, 1] (a target of E sign(D - threshold)), got "
                f"{self.d_target!r}; Wang et al. use 0.6."
            )

    def noise(
        self, key: PRNGKeyArray, x: Float[Array, " n *event"], t: Float[Array, " n"]
    ) -> Float[Array, " n *event"]:
        r"""$\alpha(t_i)\,x_i + \sigma(t_i)\,\varepsilon_i$ per point, differentiable in `x`."""
        eps = jr.normal(key, x.shape, x.dtype)
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        alpha = jnp.reshape(jax.vmap(self.process.alpha)(t), shape).astype(x.dtype)
        sigma = jnp.reshape(jax.vmap(self.process.sigma)(t), shape).astype(x.dtype)
        return alpha * x + sigma * eps

    def update(self, length: Float[Array, ""], r_d: Float[Array, ""]) -> Float[Array, ""]:
        r"""$\operatorname{clip}(T + \operatorname{sign}(r_d - d_{\rm target})\,C, 0,
        T_{\max})$."""
        new = length + jnp.sign(r_d - self.d_target) * self.rate
        return jnp.clip(new, 0.0, self.t_max).astype(length.dtype)


class GANState(eqx.Module):
    """The training state of a GAN, what [`train_gan`][gpm_sde.train.train_gan] checkpoints.

    - `generator`, `discriminator`: the current iterates.
    - `g_opt_state`, `d_opt_state`: their optimiser states.
    - `ema`: the [`EMA`][gpm_sde.train.EMA] of the generator iterates, or `None`.
    - `step`: the number of (generator) steps taken.
    - `g_trainable`, `d_trainable`: the masks of what trains (static).
    - `d_state`: the `eqx.nn.State` of a stateful discriminator (the power iterations of a
      spectrally normalised one), `None` for a stateless one.
    - `noise_length`: the current diffusion length $T$ of
      [`InstanceNoise`][gpm_sde.train.InstanceNoise], `None` without instance noise.
    """

    generator: Any
    discriminator: Any
    g_opt_state: PyTree
    d_opt_state: PyTree
    ema: EMA | None
    step: Int[Array, ""]
    g_trainable: PyTree[bool] = eqx.field(static=True)
    d_trainable: PyTree[bool] = eqx.field(static=True)
    d_state: eqx.nn.State | None = None
    noise_length: Float[Array, ""] | None = None

    def models(self) -> tuple[Any, Any]:
        """`(generator, discriminator)` as `train_gan` returns them: the generator's EMA
        average if one is kept, and a stateful discriminator bound to its state
        ([`FrozenState`][gpm_sde.nn.FrozenState], inference mode)."""
        g = self.generator if self.ema is None else self.ema.average
        d = self.discriminator
        return g, d if self.d_state is None else FrozenState(d, self.d_state)


def _is_stateful(model: Any) -> bool:
    leaves = jax.tree.leaves(model, is_leaf=lambda x: isinstance(x, eqx.nn.StateIndex))
    return any(isinstance(leaf, eqx.nn.StateIndex) for leaf in leaves)


def _check_d_state(discriminator: Any, d_state: Any) -> eqx.nn.State | None:
    stateful = _is_stateful(discriminator)
    if d_state is None and stateful:
        raise ValueError(
            "the discriminator is stateful (e.g. `spectral_norm=True`) but `d_state` is None: "
            "build it with `D, d_state = eqx.nn.make_with_state(Cls)(...)` and pass "
            "`d_state=d_state`."
        )
    if d_state is not None:
        if not isinstance(d_state, eqx.nn.State):
            raise TypeError(
                f"`d_state` must be an eqx.nn.State (from `eqx.nn.make_with_state`) or None, "
                f"got {type(d_state).__name__}."
            )
        if not stateful:
            raise ValueError(
                "`d_state` was given but the discriminator holds no state (no "
                "`eqx.nn.SpectralNorm` layer); pass d_state=None."
            )
    return d_state


def _gan_optimizers(
    g_optimizer: Any, d_optimizer: Any, lr: float
) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    if g_optimizer is None or d_optimizer is None:
        check_scalar("lr", lr)
        check_positive("lr", lr, fix="pass a learning rate such as lr=2e-4")
    default = optax.adam(lr, b1=0.5)
    g_opt = check_optimizer(default if g_optimizer is None else g_optimizer, "g_optimizer", lr)
    d_opt = check_optimizer(default if d_optimizer is None else d_optimizer, "d_optimizer", lr)
    return g_opt, d_opt


def _check_instance_noise(instance_noise: Any) -> InstanceNoise | None:
    if instance_noise is None or isinstance(instance_noise, InstanceNoise):
        return instance_noise
    raise TypeError(
        f"`instance_noise` must be a gpm_sde.train.InstanceNoise (e.g. "
        f"`InstanceNoise(gpm_sde.vp(), t_max=0.5)`) or None, got "
        f"{type(instance_noise).__name__}."
    )


def gan_init(
    generator: PyTree,
    discriminator: PyTree,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    *,
    ema: float | None = None,
    g_trainable: Trainable = None,
    d_trainable: Trainable = None,
    lr: float = 2e-4,
    d_state: eqx.nn.State | None = None,
    instance_noise: InstanceNoise | None = None,
) -> GANState:
    """The initial [`GANState`][gpm_sde.train.GANState]: optimiser states of the trainable
    leaves of both networks (default optimisers `optax.adam(lr, b1=0.5)`), an
    [`EMA`][gpm_sde.train.EMA] of the generator if `ema` is set, step 0. `g_trainable` and
    `d_trainable` select what trains ([`Trainable`][gpm_sde.train.Trainable]). `d_state`: the
    `eqx.nn.State` of a stateful (spectrally normalised) discriminator, from
    `eqx.nn.make_with_state`. `instance_noise`: the
    [`InstanceNoise`][gpm_sde.train.InstanceNoise] of the step; the state then carries the
    diffusion length, starting at its `t_init`."""
    g_opt, d_opt = _gan_optimizers(g_optimizer, d_optimizer, lr)
    ema = check_ema(ema)
    d_state = _check_d_state(discriminator, d_state)
    noise = _check_instance_noise(instance_noise)
    g_mask = trainable_mask(generator, g_trainable)
    d_mask = trainable_mask(discriminator, d_trainable)
    return GANState(
        generator=generator,
        discriminator=discriminator,
        g_opt_state=opt_init(g_opt, generator, g_mask),
        d_opt_state=opt_init(d_opt, discriminator, d_mask),
        ema=None if ema is None else ema_init(generator),
        step=jnp.zeros((), jnp.int32),
        g_trainable=g_mask,
        d_trainable=d_mask,
        d_state=d_state,
        noise_length=None if noise is None else jnp.asarray(noise.t_init, float_dtype()),
    )


def _d_batch(d: Any, st: Any, x: Array, y: Array | None, t: Array | None) -> tuple[Array, Any]:
    """The discriminator on a batch, `D([t,] x[, y])` per point, threading the state of a
    stateful one (its power iterations do not depend on the points)."""

    def one(xi: Any, yi: Any, ti: Any) -> Any:
        args = ((ti,) if ti is not None else ()) + (xi,) + ((yi,) if yi is not None else ())
        if st is None:
            return d(*args), None
        return d(*args, state=st)

    axes = (0, None if y is None else 0, None if t is None else 0)
    return jax.vmap(one, in_axes=axes, out_axes=(0, None))(x, y, t)


def _clone(st: Any) -> Any:
    """A copy of an `eqx.nn.State` that may be read while the original is kept (equinox
    invalidates a state once it has been updated)."""
    leaves, treedef = jax.tree_util.tree_flatten(st)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _pointwise(d: Any, st: Any, shape: tuple[int, ...], has_y: bool, has_t: bool) -> Any:
    """A function of one packed row `[vec(x), y, t]` (the label and time as extra
    coordinates, with zero gradient) for the gradient penalties, which differentiate a
    function of one point."""
    m = int(np.prod(shape))

    def f(p: Array) -> Array:
        x = jnp.reshape(p[:m], shape)
        args: tuple[Any, ...] = (x,)
        if has_t:
            args = (jax.lax.stop_gradient(p[-1]), *args)
        if has_y:
            args = (*args, jnp.round(jax.lax.stop_gradient(p[m])).astype(jnp.int32))
        return d(*args) if st is None else d(*args, state=_clone(st))[0]

    return f


def gan_make_step(
    data: Any,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    *,
    loss: str | AbstractGANLoss = "nonsaturating",
    batch_size: int = 256,
    latent_dim: int,
    d_steps: int = 1,
    penalty: Penalty = None,
    penalty_weight: float = 10.0,
    clip: float | None = None,
    ema: float | None = None,
    lr: float = 2e-4,
    labels: Any = None,
    instance_noise: InstanceNoise | None = None,
) -> Callable[[GANState, PRNGKeyArray], tuple[GANState, dict[str, Array]]]:
    r"""One GAN step (Goodfellow et al. 2014, Algorithm 1) as a pure jittable
    `step(state, key) -> (state, {"d_loss", "penalty", "g_loss"})`: `d_steps` descents of
    the discriminator loss plus its regulariser, then one descent of the generator loss,

    $$\phi \leftarrow \phi - \eta\nabla_\phi\big[\ell_D(D_\phi(x), D_\phi(G_\theta(z)))
    + R(\phi)\big],\qquad \theta \leftarrow \theta - \eta\nabla_\theta\,
    \ell_G(D_\phi(G_\theta(z))),$$

    with fresh real and latent batches drawn from `key` for every descent, then the EMA
    update of the generator if the state keeps one. The arguments are those of
    [`train_gan`][gpm_sde.train.train_gan] (`latent_dim`: the size of one latent $z$);
    the optimisers (and `ema`, `instance_noise`) must be those given to
    [`gan_init`][gpm_sde.train.gan_init]. With `labels` the GAN is class-conditional and with
    `instance_noise` the metrics also hold `r_d` and `noise_length` (see `train_gan`).
    """
    gan = as_gan_loss(loss)
    batch_size = check_batch_size(batch_size)
    d_steps = check_steps(d_steps, "d_steps")
    check_penalty(penalty, penalty_weight)
    if clip is not None and not float(clip) > 0.0:
        raise ValueError(f"`clip` must be a positive weight bound c or None, got {clip!r}.")
    g_opt, d_opt = _gan_optimizers(g_optimizer, d_optimizer, lr)
    decay = check_ema(ema)
    noise = _check_instance_noise(instance_noise)
    conditional = labels is not None
    if conditional:
        labeled = as_labeled_sampler(data, labels)

        def sample(key: PRNGKeyArray, n: int) -> tuple[Array, Array | None]:
            x, y = labeled(key, n)
            return x, jnp.asarray(y).astype(jnp.int32)
    else:
        unlabeled = as_sampler(data)

        def sample(key: PRNGKeyArray, n: int) -> tuple[Array, Array | None]:
            return unlabeled(key, n), None

    dtype = float_dtype()
    shape = latent_shape(None, latent_dim)
    plain = not conditional and noise is None

    def generate(g: Any, z: Array, y: Array | None) -> Array:
        return jax.vmap(g)(z) if y is None else jax.vmap(g)(z, y)

    def d_loss_fn(
        d: Any, st: Any, g: Any, real: Any, y: Any, z: Any, t: Any, k: PRNGKeyArray
    ) -> Any:
        fake = jax.lax.stop_gradient(generate(g, z, y))
        if plain and st is None:  # the original path, bit for bit
            d_real, d_fake = jax.vmap(d)(real), jax.vmap(d)(fake)
            reg = penalty_term(penalty, penalty_weight, d, real, fake, k)
        else:
            d_time = t if (t is not None and getattr(d, "time_conditioned", False)) else None
            if noise is not None and t is not None:
                k_real, k_fake = jr.split(jr.fold_in(k, 1))
                real = noise.noise(k_real, real, t)
                fake = noise.noise(k_fake, fake, t)
            d_real, st = _d_batch(d, st, real, y, d_time)
            d_fake, st = _d_batch(d, st, fake, y, d_time)
            if penalty is None:
                reg = jnp.zeros((), real.dtype)
            else:
                cols = [a.astype(real.dtype)[:, None] for a in (y, d_time) if a is not None]
                n = real.shape[0]

                def pack(v: Array) -> Array:
                    return jnp.concatenate([jnp.reshape(v, (n, -1)), *cols], axis=1)

                f = _pointwise(d, st, real.shape[1:], y is not None, d_time is not None)
                reg = penalty_term(penalty, penalty_weight, f, pack(real), pack(fake), k)
        raw = gan.discriminator_loss(d_real, d_fake)
        return raw + reg, (raw, reg, st, d_real)

    def g_loss_fn(g: Any, d: Any, st: Any, z: Any, y: Any, t: Any, k: PRNGKeyArray) -> Any:
        fake = generate(g, z, y)
        if plain and st is None:
            return gan.generator_loss(jax.vmap(d)(fake))
        d_time = t if (t is not None and getattr(d, "time_conditioned", False)) else None
        if noise is not None and t is not None:
            fake = noise.noise(k, fake, t)
        d_fake, _ = _d_batch(d, None if st is None else _clone(st), fake, y, d_time)
        return gan.generator_loss(d_fake)

    def draw_t(key: PRNGKeyArray, length: Any) -> Array | None:
        if noise is None:
            return None
        return jr.uniform(key, (batch_size,), dtype) * length

    def step(state: GANState, key: PRNGKeyArray) -> tuple[GANState, dict[str, Array]]:
        _check_ema_matches(decay, state.ema, "gan")
        if (noise is None) != (state.noise_length is None):
            raise ValueError(
                "`instance_noise` must be the same in `gan_init` and `gan_make_step` (the state "
                f"{'has no' if state.noise_length is None else 'has a'} diffusion length)."
            )
        g, d = state.generator, state.discriminator
        g_state, dopt_state, avg = state.g_opt_state, state.d_opt_state, state.ema
        g_mask, d_mask = state.g_trainable, state.d_trainable
        st, length = state.d_state, state.noise_length
        keys = jr.split(key, d_steps + 1)
        raw = reg = jnp.zeros((), dtype)
        d_real = jnp.zeros((batch_size,), dtype)
        for kd in keys[:d_steps]:
            k_real, k_z, k_pen = jr.split(kd, 3)
            real, y = sample(k_real, batch_size)
            z = draw_latents(k_z, batch_size, shape, dtype)
            t = draw_t(jr.fold_in(kd, 1), length)
            (_, (raw, reg, st, d_real)), grads = value_and_grad(
                d_loss_fn, d, d_mask, st, g, real, y, z, t, k_pen, has_aux=True
            )
            d, dopt_state = opt_step(d_opt, d, grads, dopt_state, d_mask)
            if clip is not None:
                d = clip_weights(d, float(clip))
        z = draw_latents(keys[-1], batch_size, shape, dtype)
        k_g = jr.fold_in(keys[-1], 1)
        y = sample(jr.fold_in(k_g, 0), batch_size)[1]
        t = draw_t(jr.fold_in(k_g, 1), length)
        g_loss, grads = value_and_grad(g_loss_fn, g, g_mask, d, st, z, y, t, jr.fold_in(k_g, 2))
        g, g_state = opt_step(g_opt, g, grads, g_state, g_mask)
        if avg is not None:
            avg = ema_update(avg, g, decay, g_mask)  # pyright: ignore[reportArgumentType]
        metrics = {"d_loss": raw, "penalty": reg, "g_loss": g_loss}
        if noise is not None and length is not None:
            r_d = jnp.mean(jnp.sign(d_real - noise.threshold))
            metrics["r_d"] = r_d.astype(dtype)
            metrics["noise_length"] = length
            length = noise.update(length, r_d)
        new = GANState(
            g,
            d,
            g_state,
            dopt_state,
            avg,
            state.step + 1,
            g_mask,
            d_mask,
            d_state=st,
            noise_length=length,
        )
        return new, metrics

    return step


def _check_ema_matches(decay: float | None, ema: Any, family: str) -> None:
    if (decay is None) != (ema is None):
        raise ValueError(
            f"`ema` must be the same in `{family}_init` and `{family}_make_step` (the state "
            f"{'has no' if ema is None else 'has an'} EMA, the step has ema={decay})."
        )


def train_gan(
    generator: _G,
    discriminator: Any,
    data: Any,
    key: PRNGKeyArray,
    *,
    steps: int,
    loss: str | AbstractGANLoss = "nonsaturating",
    batch_size: int = 256,
    latent_dim: int | None = None,
    d_steps: int = 1,
    penalty: Penalty = None,
    penalty_weight: float = 10.0,
    clip: float | None = None,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    lr: float = 2e-4,
    ema: float | None = None,
    g_trainable: Trainable = None,
    d_trainable: Trainable = None,
    labels: Any = None,
    d_state: eqx.nn.State | None = None,
    instance_noise: InstanceNoise | None = None,
    **loop: Unpack[LoopOptions],
) -> tuple[_G, Any, dict[str, np.ndarray]]:
    r"""Train a GAN (Goodfellow et al. 2014, Algorithm 1): per step, `d_steps` descents of
    the discriminator loss plus its regulariser, then one descent of the generator loss,

    $$\phi \leftarrow \phi - \eta\nabla_\phi\big[\ell_D(D_\phi(x), D_\phi(G_\theta(z)))
    + R(\phi)\big],\qquad \theta \leftarrow \theta - \eta\nabla_\theta\,
    \ell_G(D_\phi(G_\theta(z))),$$

    with fresh real and latent batches for every descent. A thin loop over
    [`gan_init`][gpm_sde.train.gan_init] and [`gan_make_step`][gpm_sde.train.gan_make_step]
    that checkpoints the [`GANState`][gpm_sde.train.GANState]. The loss pairs $(\ell_D, \ell_G)$ are
    those of `gpm_sde.losses` (critic trained high on data): `"minimax"`, `"nonsaturating"`,
    `"wgan"` (with `clip=0.01`: WGAN, Arjovsky et al. 2017, Alg. 1, `d_steps=5`; with
    `penalty="gp"`: WGAN-GP, Gulrajani et al. 2017, Alg. 1, λ = 10), `"hinge"`,
    `"lsgan"`, or a loss object (e.g. `FGAN(f_divergence("kl"))`).

    **Arguments:**

    - `generator`: `G(z)` on one latent; `discriminator`: `D(x)` on one point, a scalar.
    - `data`: real data `(N, *event)`, a law with `.sample`, or a callable `(key, n)`.
    - `key`: PRNG key of the run. `steps`: generator steps.
    - `loss`: a name accepted by [`gan_loss`][gpm_sde.losses.gan_loss] or a loss object.
    - `batch_size`: real and generated points per descent.
    - `latent_dim`: the latent size (default: `generator.latent_dim`); latents are
      $\mathcal{N}(0, I)$.
    - `d_steps`: discriminator descents per generator descent.
    - `penalty`: `"gp"` (interpolation penalty), `"r1"` or `None`; `penalty_weight`: λ or γ.
    - `clip`: if set, clip the discriminator weights to $[-c, c]$ after each descent.
    - `g_optimizer`, `d_optimizer`: optax transformations (default `optax.adam(lr, b1=0.5)`,
      as in DCGAN).
    - `ema`: if set, a decay $d$: the returned generator is the exponential moving average of
      the generator iterates (Yazıcı et al. 2019), bias-corrected as in
      [`fit_score`][gpm_sde.train.fit_score] (no share for the initial weights). GAN games
      rotate around their equilibrium rather than converge to it (WGAN-GP is not locally
      convergent, Mescheder et al. 2018, §3), and the average sits near the centre of the
      orbit.
    - `g_trainable`, `d_trainable`: what trains in each network
      ([`Trainable`][gpm_sde.train.Trainable]; default
      [`default_trainable`][gpm_sde.train.default_trainable]).
    - `labels`: `None` (unconditional), or the labels of a class-conditional GAN (Mirza &
      Osindero 2014), in the convention shared by the class-conditional trainers: an
      integer array `(N,)` aligned with a data array, `"components"` for a mixture law
      (class = component), or `"paired"` for a callable `(key, n) -> (batch, labels)`. The
      networks are then called `G(z, y)` and `D(x, y)`: the discriminator sees real pairs
      $(x, y)$ and generated pairs $(G(z, y), y)$ **with the labels of the real batch**, so
      generated labels follow the data's label law (its empirical class frequencies for a
      data array); the generator's labels are those of a fresh real batch. Gradient
      penalties act on $x \mapsto D(x, y)$ at the pair's label.
    - `d_state`: the `eqx.nn.State` of a stateful discriminator, e.g. a spectrally
      normalised one (`D, d_state = eqx.nn.make_with_state(MLPDiscriminator)(...,
      spectral_norm=True)`): it is threaded through every discriminator call (one power
      iteration per call of each layer in the discriminator descents; those of the generator
      descent are discarded) and kept in the [`GANState`][gpm_sde.train.GANState].
    - `instance_noise`: an [`InstanceNoise`][gpm_sde.train.InstanceNoise]: the
      discriminator sees real and generated points diffused to a random time of an adaptive
      diffusion length (Diffusion-GAN, Wang et al. 2022); the history then also holds `r_d`
      (the overfitting statistic of the real batch) and `noise_length` (the length $T$ used
      in that step).
    - `**loop`: the loop options `checkpoint`, `resume`, `checkpoint_every`, `progress`
      and `chunk` ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `(generator, discriminator, history)` with `d_loss` (without the regulariser),
    `penalty` and `g_loss` per step. A stateful discriminator is returned bound to its final
    state, in inference mode ([`FrozenState`][gpm_sde.nn.FrozenState]), a plain function
    `D(x)` (or `D(x, y)`, `D(s, x)`); continue training from the `GANState` of
    [`gan_init`][gpm_sde.train.gan_init] and [`gan_make_step`][gpm_sde.train.gan_make_step].
    """
    (latent_dim,) = latent_shape(generator, latent_dim)
    g_opt, d_opt = _gan_optimizers(g_optimizer, d_optimizer, lr)
    step = gan_make_step(
        data,
        g_opt,
        d_opt,
        loss=loss,
        batch_size=batch_size,
        latent_dim=latent_dim,
        d_steps=d_steps,
        penalty=penalty,
        penalty_weight=penalty_weight,
        clip=clip,
        ema=ema,
        labels=labels,
        instance_noise=instance_noise,
    )
    state = gan_init(
        generator,
        discriminator,
        g_opt,
        d_opt,
        ema=ema,
        g_trainable=g_trainable,
        d_trainable=d_trainable,
        d_state=d_state,
        instance_noise=instance_noise,
    )
    state, history = run_loop("train_gan", step, state, key, steps=steps, **loop)
    generator, discriminator = state.models()
    return generator, discriminator, history
