r"""`train_discriminator_flow` and `discriminator_flow_sample`: GPM's Discriminator Flow
(Franceschi et al. 2023, §4.2, Algorithms 2–3), a generator-free GAN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, Unpack

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from .._checks import check_callable, check_positive
from ..flows import discriminator_field, particle_flow
from ..losses import AbstractGANLoss, HingeGAN, WassersteinGAN
from ..solve import simulate
from ._common import (
    Trainable,
    as_sampler,
    check_batch_size,
    check_optimizer,
    opt_init,
    opt_step,
    trainable_mask,
    value_and_grad,
)
from ._gan import Penalty, as_gan_loss, check_penalty, penalty_term
from ._loop import LoopOptions, check_steps, run_loop

_D = TypeVar("_D")
FieldKind = Literal["nonsaturating", "ipm", "hinge"]


def field_kind(loss: AbstractGANLoss) -> FieldKind:
    """The particle field that matches a discriminator trained by `loss` (every library loss
    trains it high on data): $-\\nabla\\operatorname{softplus}(-D)$ for logits (`"nonsaturating"`),
    $+\\nabla D$ for the WGAN (`"ipm"`) and hinge (`"hinge"`) critics."""
    if isinstance(loss, WassersteinGAN):
        return "ipm"
    return "hinge" if isinstance(loss, HingeGAN) else "nonsaturating"


def _prior_sampler(prior: Any, event_shape: tuple[int, ...]) -> Callable[..., Array]:
    if prior is None:
        return lambda key, n, dtype: jr.normal(key, (n, *event_shape), dtype=dtype)
    if hasattr(prior, "sample"):
        return lambda key, n, dtype: jnp.asarray(prior.sample(key, n), dtype=dtype)
    if callable(prior):
        return lambda key, n, dtype: jnp.asarray(prior(key, n), dtype=dtype)
    raise TypeError(
        f"`prior` must be None (standard normal), a law with `.sample(key, n)` or a callable "
        f"`(key, n) -> cloud`, got {type(prior).__name__}."
    )


def discriminator_flow_sample(
    discriminator: Callable[..., Any],
    y0: Float[Array, " n *event"],
    *,
    t1: float = 1.0,
    flow_steps: int = 32,
    kind: FieldKind = "nonsaturating",
    save_path: bool = False,
) -> Float[Array, " n *event"] | Float[Array, " k n *event"]:
    r"""Move the cloud `y0` by the Discriminator-Flow ODE (Franceschi et al. 2023, Algorithm 3)

    $$\frac{dx}{ds} = -\nabla_x c\big(D(s, x)\big),\qquad s \in [0, t_1],$$

    with explicit Euler steps $x_{k+1} = x_k - \frac{t_1}{K}\nabla c(D(s_k, x_k))$, the
    discretisation the discriminator was trained on. `kind` selects $c$ as in
    [`discriminator_field`][gpm_sde.flows.discriminator_field]. Returns the final cloud, or,
    with `save_path=True`, the $K + 1$ clouds $x_0, \dots, x_K$ stacked.
    """
    flow_steps = check_steps(flow_steps, "flow_steps")
    check_positive("t1", t1, fix="pass the flow's time horizon, e.g. t1=1.0")
    field = discriminator_field(discriminator, kind)
    saveat = diffrax.SaveAt(steps=True, t0=True) if save_path else None
    sol = simulate(
        particle_flow(field),
        y0,
        jr.key(0),  # an ODE: the key is not used
        t1=t1,
        steps=flow_steps,
        solver=diffrax.Euler(),
        saveat=saveat,
    )
    ys = sol.ys
    assert ys is not None
    return ys if save_path else ys[-1]


class DiscriminatorFlowState(eqx.Module):
    """The training state of Discriminator Flow, what
    [`train_discriminator_flow`][gpm_sde.train.train_discriminator_flow] checkpoints.

    - `discriminator`: the current time-conditioned discriminator `D(s, x)`.
    - `opt_state`: its optimiser state.
    - `step`: the number of rounds taken.
    - `trainable`: the mask of what trains (static).
    """

    discriminator: Any
    opt_state: PyTree
    step: Int[Array, ""]
    trainable: PyTree[bool] = eqx.field(static=True)

    def models(self) -> Any:
        """The discriminator, as `train_discriminator_flow` returns it."""
        return self.discriminator


def discriminator_flow_init(
    discriminator: PyTree,
    optimizer: optax.GradientTransformation | None = None,
    *,
    trainable: Trainable = None,
    lr: float = 1e-3,
) -> DiscriminatorFlowState:
    """The initial [`DiscriminatorFlowState`][gpm_sde.train.DiscriminatorFlowState]: the
    optimiser state (default `optax.adam(lr)`) of the trainable leaves
    ([`Trainable`][gpm_sde.train.Trainable]), step 0."""
    fix = "e.g. MLPDiscriminator(..., time_conditioned=True)"
    check_callable("discriminator", discriminator, "D(s, x)", fix)
    opt = check_optimizer(optimizer, "optimizer", lr)
    mask = trainable_mask(discriminator, trainable)
    return DiscriminatorFlowState(
        discriminator, opt_init(opt, discriminator, mask), jnp.zeros((), jnp.int32), mask
    )


def discriminator_flow_make_step(
    data: Any,
    optimizer: optax.GradientTransformation | None = None,
    *,
    event_shape: tuple[int, ...] | None = None,
    n_particles: int = 1024,
    flow_steps: int = 32,
    t1: float = 1.0,
    prior: Any = None,
    loss: str | AbstractGANLoss = "nonsaturating",
    d_steps: int = 8,
    batch_size: int = 256,
    penalty: Penalty = "gp",
    penalty_weight: float = 1.0,
    lr: float = 1e-3,
) -> Callable[
    [DiscriminatorFlowState, PRNGKeyArray], tuple[DiscriminatorFlowState, dict[str, Array]]
]:
    r"""One round of Discriminator Flow (Franceschi et al. 2023, Algorithm 2) as a pure
    jittable `step(state, key) -> (state, {"d_loss", "penalty"})`: flow `n_particles` prior
    points with the current discriminator, then `d_steps` descents of

    $$\mathbb{E}_k\Big[\ell_D\big(D_\phi(s_k, x), D_\phi(s_k, \tilde x_k)\big) + R(\phi)\Big],
    \quad x \sim q,\ \tilde x_k \sim \rho_{s_k},$$

    the metrics being the round means. The arguments are those of
    [`train_discriminator_flow`][gpm_sde.train.train_discriminator_flow]; `optimizer` must be
    the one given to [`discriminator_flow_init`][gpm_sde.train.discriminator_flow_init].
    """
    gan = as_gan_loss(loss)
    kind = field_kind(gan)
    batch_size = check_batch_size(batch_size)
    n_particles = check_batch_size(n_particles, "n_particles")
    d_steps = check_steps(d_steps, "d_steps")
    flow_steps = check_steps(flow_steps, "flow_steps")
    check_positive("t1", t1, fix="pass the flow's time horizon, e.g. t1=1.0")
    check_penalty(penalty, penalty_weight)
    opt = check_optimizer(optimizer, "optimizer", lr)
    sample = as_sampler(data)
    if event_shape is None:
        event_shape = tuple(sample(jr.key(0), 1).shape[1:])
    shape = tuple(event_shape)
    draw_prior = _prior_sampler(prior, shape)
    times = jnp.linspace(0.0, t1, flow_steps + 1)[:-1]

    def d_loss_fn(d: Any, real: Any, fake: Any, s: Any, k: PRNGKeyArray) -> Any:
        d_real = jax.vmap(d)(s, real)
        d_fake = jax.vmap(d)(s, fake)
        raw = gan.discriminator_loss(d_real, d_fake)
        # The penalty on ∇ₓD(s, ·) at each point's own time: s rides along as a first
        # coordinate that the gradient does not see.
        reg = penalty_term(
            penalty,
            penalty_weight,
            lambda sx: d(jax.lax.stop_gradient(sx[0]), sx[1:].reshape(shape)),
            _with_time(s, real),
            _with_time(s, fake),
            k,
        )
        return raw + reg, (raw, reg)

    def step(
        state: DiscriminatorFlowState, key: PRNGKeyArray
    ) -> tuple[DiscriminatorFlowState, dict[str, Array]]:
        mask = state.trainable
        k_prior, k_rounds = jr.split(key)
        dtype = times.dtype
        y0 = draw_prior(k_prior, n_particles, dtype)
        path = discriminator_flow_sample(
            jax.lax.stop_gradient(state.discriminator),
            y0,
            t1=t1,
            flow_steps=flow_steps,
            kind=kind,
            save_path=True,
        )[:-1]

        def descent(carry: Any, kd: PRNGKeyArray) -> Any:
            d, d_state = carry
            k_real, k_idx, k_pts, k_pen = jr.split(kd, 4)
            real = sample(k_real, batch_size).astype(dtype)
            idx = jr.randint(k_idx, (batch_size,), 0, flow_steps)
            pts = jr.randint(k_pts, (batch_size,), 0, n_particles)
            fake = path[idx, pts]
            (_, aux), grads = value_and_grad(
                d_loss_fn, d, mask, real, fake, times[idx], k_pen, has_aux=True
            )
            d, d_state = opt_step(opt, d, grads, d_state, mask)
            return (d, d_state), aux

        dyn, static = eqx.partition((state.discriminator, state.opt_state), eqx.is_array)

        def body(dyn_carry: Any, kd: PRNGKeyArray) -> Any:
            new, aux = descent(eqx.combine(dyn_carry, static), kd)
            return eqx.partition(new, eqx.is_array)[0], aux

        dyn, (raw, reg) = jax.lax.scan(body, dyn, jr.split(k_rounds, d_steps))
        d, d_state = eqx.combine(dyn, static)
        new = DiscriminatorFlowState(d, d_state, state.step + 1, mask)
        return new, {"d_loss": jnp.mean(raw), "penalty": jnp.mean(reg)}

    return step


def train_discriminator_flow(
    discriminator: _D,
    data: Any,
    key: PRNGKeyArray,
    *,
    steps: int,
    event_shape: tuple[int, ...] | None = None,
    n_particles: int = 1024,
    flow_steps: int = 32,
    t1: float = 1.0,
    prior: Any = None,
    loss: str | AbstractGANLoss = "nonsaturating",
    d_steps: int = 8,
    batch_size: int = 256,
    penalty: Penalty = "gp",
    penalty_weight: float = 1.0,
    optimizer: optax.GradientTransformation | None = None,
    lr: float = 1e-3,
    trainable: Trainable = None,
    **loop: Unpack[LoopOptions],
) -> tuple[_D, dict[str, np.ndarray]]:
    r"""Train the time-conditioned discriminator of Discriminator Flow (Franceschi et al.
    2023, §4.2, Algorithm 2) on the particles of its own flow.

    Per step (a "round"):

    1. flow `n_particles` prior points with the current discriminator
       ([`discriminator_flow_sample`][gpm_sde.train.discriminator_flow_sample]) and keep the
       clouds $\rho_{s_k}$ at the $K$ = `flow_steps` grid times $s_k = k t_1/K$;
    2. `d_steps` descents of the GAN discriminator loss of $D(s_k, \cdot)$ between data and
       the cloud $\rho_{s_k}$, for a time index $k$ drawn uniformly per point, plus the
       gradient penalty:

    $$\phi \leftarrow \phi - \eta\nabla_\phi\,\mathbb{E}_k\Big[\ell_D\big(D_\phi(s_k, x),
    D_\phi(s_k, \tilde x_k)\big) + R(\phi)\Big],\quad x \sim q,\ \tilde x_k \sim \rho_{s_k}.$$

    The optimal $D(s, \cdot)$ against $\rho_s$ makes $-\nabla c(D)$ the GAN field of
    $\rho_s$: for the non-saturating logit $D^* = \log q - \log\rho_s$ it is
    $\sigma(-D^*)\nabla\log(q/\rho_s)$ (Franceschi et al. 2023, §4.2). The field used is the
    one matching `loss`
    ($c = \operatorname{softplus}(-D)$ for logits, $c = -D$ for the WGAN and hinge critics,
    all trained high on data). Generate with `discriminator_flow_sample(D, prior_cloud, ...)`
    using the same `t1`, `flow_steps` and that field (`field_kind(as_gan_loss(loss))`).

    A thin loop over [`discriminator_flow_init`][gpm_sde.train.discriminator_flow_init] and
    [`discriminator_flow_make_step`][gpm_sde.train.discriminator_flow_make_step] that
    checkpoints the [`DiscriminatorFlowState`][gpm_sde.train.DiscriminatorFlowState].

    **Arguments:**

    - `discriminator`: `D(s, x)` on one point (e.g.
      `MLPDiscriminator(..., time_conditioned=True)`).
    - `data`: real data `(N, *event)`, a law with `.sample`, or a callable `(key, n)`.
    - `key`: PRNG key. `steps`: rounds.
    - `event_shape`: the shape of one point (default: inferred from a data batch).
    - `n_particles`: particles flowed per round; `flow_steps`: $K$; `t1`: the horizon.
    - `prior`: the initial law: `None` for $\mathcal{N}(0, I)$, a law with `.sample`, or a
      callable `(key, n)`.
    - `loss`: the GAN loss ([`gan_loss`][gpm_sde.losses.gan_loss] name or object).
    - `d_steps`: discriminator descents per round; `batch_size`: points per descent.
    - `penalty`, `penalty_weight`: the regulariser (`"gp"`, `"r1"`, `None`), which keeps
      $\nabla_x D$ and thus the particle speed bounded.
    - `optimizer`: optax transformation (default `optax.adam(lr)`).
    - `trainable`: what trains ([`Trainable`][gpm_sde.train.Trainable]; default
      [`default_trainable`][gpm_sde.train.default_trainable]).
    - `**loop`: the loop options `checkpoint`, `resume`, `checkpoint_every`, `progress`
      and `chunk` (default 10 here) ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `(discriminator, history)` with the round means of `d_loss` and `penalty`.
    """
    opt = check_optimizer(optimizer, "optimizer", lr)
    step = discriminator_flow_make_step(
        data,
        opt,
        event_shape=event_shape,
        n_particles=n_particles,
        flow_steps=flow_steps,
        t1=t1,
        prior=prior,
        loss=loss,
        d_steps=d_steps,
        batch_size=batch_size,
        penalty=penalty,
        penalty_weight=penalty_weight,
    )
    state = discriminator_flow_init(discriminator, opt, trainable=trainable)
    state, history = run_loop(
        "train_discriminator_flow", step, state, key, steps=steps, **{"chunk": 10, **loop}
    )
    return state.models(), history


def _with_time(s: Array, x: Array) -> Array:
    """Rows $(s_i, \\operatorname{vec} x_i)$, so a penalty on one input sees both."""
    return jnp.concatenate([s[:, None].astype(x.dtype), x.reshape(x.shape[0], -1)], axis=1)
