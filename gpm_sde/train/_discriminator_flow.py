r"""`train_discriminator_flow` and `discriminator_flow_sample`: GPM's Discriminator Flow
(Franceschi et al. 2023, §4.2, Algorithms 2–3), a generator-free GAN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, Unpack

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from .._checks import check_callable, check_positive, is_concrete
from ..flows import discriminator_field
from ..losses import AbstractGANLoss, HingeGAN, WassersteinGAN
from ._common import (
    Trainable,
    as_labeled_sampler,
    as_sampler,
    check_batch_size,
    check_optimizer,
    float_dtype,
    opt_init,
    opt_step,
    trainable_mask,
    value_and_grad,
)
from ._gan import Penalty, as_gan_loss, check_penalty, penalty_term
from ._loop import LoopOptions, check_steps, run_loop
from ._particle_labels import LabeledDiscriminatorField, check_particle_labels

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
    eta: float = 1.0,
    t1: float = 1.0,
    flow_steps: int = 32,
    kind: FieldKind = "nonsaturating",
    low_on_data: bool = False,
    entropy_reg: float = 0.0,
    key: PRNGKeyArray | None = None,
    save_path: bool = False,
    labels: Int[Array, " n"] | None = None,
) -> Float[Array, " n *event"] | Float[Array, " k n *event"]:
    r"""Move the cloud `y0` by the Discriminator Flow (Franceschi et al. 2023, Algorithm 3):
    $K$ = `flow_steps` explicit steps of the field
    $v(s, x) = -\nabla_x c(D(s, x))$ ([`discriminator_field`][gpm_sde.flows.discriminator_field],
    `kind` and `low_on_data` as there),

    $$x_{k+1} = x_k + \frac{\eta\,t_1}{K}\,v(s_k, x_k) +
    \sqrt{\frac{\varepsilon\,t_1}{K}}\,\xi_k\,[k < K - 1],\qquad s_k = \frac{k\,t_1}{K},$$

    the discretisation the discriminator was trained on, with $\xi_k \sim \mathcal{N}(0, I)$
    and $\varepsilon$ = `entropy_reg`. With $t_1 = 1$ this is the GPM authors' generation loop
    (`DiscrFlow.partial_generate_like`: step `eta * grad / N`, discriminator time input $k/N$,
    noise `sqrt(entropy_reg / N)` on every step but the last); `eta` scales the step without
    changing the times $D$ sees, `t1` scales both. `key` is needed when `entropy_reg > 0`.

    With `labels` (one integer class $y_i$ per particle, shape `(n,)`), the discriminator is
    class-conditional, `discriminator(s, x, y)`, and each particle follows the field of its
    own class, $v(s, x_i\mid y_i) = -\nabla_x c(D(s, x_i, y_i))$: the flow above applied to
    $q(\cdot\mid y_i)$ (see
    [`train_discriminator_flow`][gpm_sde.train.train_discriminator_flow]).

    Returns the final cloud, or, with `save_path=True`, the $K + 1$ clouds $x_0, \dots, x_K$
    stacked.
    """
    flow_steps = check_steps(flow_steps, "flow_steps")
    check_positive("t1", t1, fix="pass the flow's time horizon, e.g. t1=1.0")
    check_positive("eta", eta, fix="pass the step multiplier, e.g. eta=1.0")
    check_positive("entropy_reg", entropy_reg, strict=False, fix="pass e.g. entropy_reg=0.0")
    noisy = not (is_concrete(entropy_reg) and float(entropy_reg) == 0.0)
    if noisy and key is None:
        raise ValueError(
            "`key` is required when `entropy_reg` > 0 (the flow adds Gaussian noise); pass "
            "key=jax.random.key(...)."
        )
    if labels is None:
        field = discriminator_field(discriminator, kind, low_on_data=low_on_data)
    else:
        lab = check_particle_labels(labels, y0.shape[0])
        field = LabeledDiscriminatorField(discriminator, kind, low_on_data, lab)
    return _flow(field, y0, eta, t1, flow_steps, entropy_reg if noisy else None, key, save_path)


def flow_times(t1: Any, flow_steps: int, dtype: Any) -> Float[Array, " k"]:
    """The discriminator's time inputs $s_k = k\\,t_1/K$, $k = 0, \\dots, K - 1$."""
    return jnp.arange(flow_steps, dtype=dtype) * (jnp.asarray(t1, dtype) / flow_steps)


@eqx.filter_jit
def _flow(
    field: Any,
    y0: Array,
    eta: Any,
    t1: Any,
    flow_steps: int,
    entropy_reg: Any,
    key: PRNGKeyArray | None,
    save_path: bool,
) -> Array:
    dtype = y0.dtype
    h = jnp.asarray(t1, dtype) / flow_steps
    step_size = jnp.asarray(eta, dtype) * h
    keys = jr.split(jr.key(0) if key is None else key, flow_steps)

    def body(x: Array, inputs: tuple[Array, Array, PRNGKeyArray]) -> tuple[Array, Array]:
        k, s, kk = inputs
        x_next = x + step_size * field(s, x, None)
        if entropy_reg is not None:
            noise = jnp.sqrt(jnp.asarray(entropy_reg, dtype) * h) * jr.normal(kk, x.shape, dtype)
            x_next = x_next + jnp.where(k < flow_steps - 1, noise, jnp.zeros_like(noise))
        return x_next, x

    ks = jnp.arange(flow_steps)
    x_end, path = jax.lax.scan(body, y0, (ks, flow_times(t1, flow_steps, dtype), keys))
    if save_path:
        return jnp.concatenate([path, x_end[None]], axis=0)
    return x_end


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
    eta: float = 1.0,
    t1: float = 1.0,
    entropy_reg: float = 0.0,
    prior: Any = None,
    loss: str | AbstractGANLoss = "nonsaturating",
    d_steps: int = 8,
    batch_size: int = 256,
    penalty: Penalty = "gp",
    penalty_weight: float = 1.0,
    lr: float = 1e-3,
    labels: Any = None,
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
    With `labels`, the class-conditional round of `train_discriminator_flow`.
    """
    gan = as_gan_loss(loss)
    kind = field_kind(gan)
    batch_size = check_batch_size(batch_size)
    n_particles = check_batch_size(n_particles, "n_particles")
    d_steps = check_steps(d_steps, "d_steps")
    flow_steps = check_steps(flow_steps, "flow_steps")
    check_positive("t1", t1, fix="pass the flow's time horizon, e.g. t1=1.0")
    check_positive("eta", eta, fix="pass the step multiplier, e.g. eta=1.0")
    check_positive("entropy_reg", entropy_reg, strict=False, fix="pass e.g. entropy_reg=0.0")
    check_penalty(penalty, penalty_weight)
    opt = check_optimizer(optimizer, "optimizer", lr)
    labelled = labels is not None
    draw = _data_sampler(data, labels)
    if event_shape is None:
        event_shape = tuple(draw(jr.key(0), 1)[0].shape[1:])
    shape = tuple(event_shape)
    draw_prior = _prior_sampler(prior, shape)

    def d_loss_fn(d: Any, real: Any, y_real: Any, fake: Any, y_fake: Any, s: Any, k: Any) -> Any:
        if y_real is None:
            d_real, d_fake = jax.vmap(d)(s, real), jax.vmap(d)(s, fake)
        else:
            d_real, d_fake = jax.vmap(d)(s, real, y_real), jax.vmap(d)(s, fake, y_fake)
        raw = gan.discriminator_loss(d_real, d_fake)
        if y_real is None:
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
        else:
            # Rows (s, y, vec x): the penalty sees ∇ₓD(s, ·, y) at each point's own time,
            # with the data point's class y on both rows (an interpolate between a data point
            # of class y and a particle is scored by D(s, ·, y)).
            reg = penalty_term(
                penalty,
                penalty_weight,
                lambda row: d(
                    jax.lax.stop_gradient(row[0]),
                    row[2:].reshape(shape),
                    jnp.round(jax.lax.stop_gradient(row[1])).astype(y_real.dtype),
                ),
                _with_time(s, _with_time(y_real, real)),
                _with_time(s, _with_time(y_real, fake)),
                k,
            )
        return raw + reg, (raw, reg)

    def step(
        state: DiscriminatorFlowState, key: PRNGKeyArray
    ) -> tuple[DiscriminatorFlowState, dict[str, Array]]:
        mask = state.trainable
        keys = jr.split(key, 4 if labelled else 3)
        k_prior, k_rounds, k_noise = keys[0], keys[1], keys[2]
        dtype = float_dtype()
        times = flow_times(t1, flow_steps, dtype)
        y0 = draw_prior(k_prior, n_particles, dtype)
        # With labels: the particles' classes, drawn with the data's label law.
        lab = draw(keys[3], n_particles)[1] if labelled else None
        path = discriminator_flow_sample(
            jax.lax.stop_gradient(state.discriminator),
            y0,
            eta=eta,
            t1=t1,
            flow_steps=flow_steps,
            kind=kind,
            entropy_reg=entropy_reg,
            key=k_noise,
            save_path=True,
            labels=lab,
        )[:-1]

        def descent(carry: Any, kd: PRNGKeyArray) -> Any:
            d, d_state = carry
            k_real, k_idx, k_pts, k_pen = jr.split(kd, 4)
            real, y_real = draw(k_real, batch_size)
            idx = jr.randint(k_idx, (batch_size,), 0, flow_steps)
            if n_particles == batch_size:  # each particle once, as in the authors' code
                pts = jr.permutation(k_pts, n_particles)
            else:
                pts = jr.randint(k_pts, (batch_size,), 0, n_particles)
            (_, aux), grads = value_and_grad(
                d_loss_fn,
                d,
                mask,
                real.astype(dtype),
                y_real,
                path[idx, pts],
                None if lab is None else lab[pts],
                times[idx],
                k_pen,
                has_aux=True,
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
    eta: float = 1.0,
    t1: float = 1.0,
    entropy_reg: float = 0.0,
    prior: Any = None,
    loss: str | AbstractGANLoss = "nonsaturating",
    d_steps: int = 8,
    batch_size: int = 256,
    penalty: Penalty = "gp",
    penalty_weight: float = 1.0,
    optimizer: optax.GradientTransformation | None = None,
    lr: float = 1e-3,
    trainable: Trainable = None,
    labels: Any = None,
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
    using the same `eta`, `t1`, `flow_steps` and that field (`field_kind(as_gan_loss(loss))`).

    **Class-conditional (`labels`).** With `labels`, the data come as pairs $(x, y)$
    ([`as_labeled_sampler`][gpm_sde.train.as_labeled_sampler]), every particle carries a
    class $y_i$ drawn with the data's label law at the start of the round, the discriminator
    is $D_\phi(s, x, y)$, and each particle moves along the field of its own class,
    $v(s, x\mid y) = -\nabla_x c(D_\phi(s, x, y))$. The discriminator descends

    $$\mathbb{E}_{y}\,\mathbb{E}_k\Big[\ell_D\big(D_\phi(s_k, x, y),
    D_\phi(s_k, \tilde x_k, y')\big) + R(\phi)\Big],\quad (x, y) \sim q,\
    (\tilde x_k, y') \sim \rho_{s_k},$$

    whose minimiser over functions is, class by class, the unconditional one for
    $q(\cdot\mid y)$ against $\rho_s(\cdot\mid y)$ (the two label laws are the same, so
    for the non-saturating logit $D^*(s, x, y) = \log q(x\mid y) - \log\rho_s(x\mid y)$):
    the particles of class $y$ follow Discriminator Flow towards $q(\cdot\mid y)$ (the
    conditional GAN of Mirza & Osindero 2014 in GPM's generator-free form; the combination
    is this library's). The penalty at an interpolate $\hat x$ between a data point of class
    $y$ and a particle is taken on $D(s, \hat x, y)$, the data point's class. Generate with
    `discriminator_flow_sample(D, prior_cloud, labels=y, ...)`.

    A thin loop over [`discriminator_flow_init`][gpm_sde.train.discriminator_flow_init] and
    [`discriminator_flow_make_step`][gpm_sde.train.discriminator_flow_make_step] that
    checkpoints the [`DiscriminatorFlowState`][gpm_sde.train.DiscriminatorFlowState].

    **Arguments:**

    - `discriminator`: `D(s, x)` on one point (e.g.
      `MLPDiscriminator(..., time_conditioned=True)`).
    - `data`: real data `(N, *event)`, a law with `.sample`, or a callable `(key, n)`.
    - `key`: PRNG key. `steps`: rounds.
    - `event_shape`: the shape of one point (default: inferred from a data batch).
    - `n_particles`: particles flowed per round (with `n_particles == batch_size`, each
      descent pairs every particle once with a data point, as the authors' code does);
      `flow_steps`: $K$; `eta`: the step multiplier $\eta$ (the authors' `eta`, which does
      not change the times $D$ sees); `t1`: the horizon; `entropy_reg`: the variance rate
      $\varepsilon$ of the noise added along the flow (their `entropy_reg`), see
      [`discriminator_flow_sample`][gpm_sde.train.discriminator_flow_sample].
    - `prior`: the initial law: `None` for $\mathcal{N}(0, I)$, a law with `.sample`, or a
      callable `(key, n)`.
    - `loss`: the GAN loss ([`gan_loss`][gpm_sde.losses.gan_loss] name or object).
    - `d_steps`: discriminator descents per round; `batch_size`: points per descent.
    - `penalty`, `penalty_weight`: the regulariser (`"gp"`, `"r1"`, `None`; the authors'
      code uses none). `"gp"`, $\lambda(|\nabla_x D| - 1)^2$, holds the critic's slope near 1,
      so its field does not vanish at the data: with a WGAN or hinge critic the particles
      settle past the data (by up to $2\lambda$ in 1-D), and a critic that starts with the
      wrong slope can stay there (`tests/test_discriminator_flow.py` measures both).
      `"r1"`, $\lambda|\nabla_x D|^2$ on the data, lets the slope vanish as the particles
      reach the data; about 0.1 works on the toy problems of the tests.
    - `optimizer`: optax transformation (default `optax.adam(lr)`).
    - `trainable`: what trains ([`Trainable`][gpm_sde.train.Trainable]; default
      [`default_trainable`][gpm_sde.train.default_trainable]).
    - `labels`: `None` (unconditional), or the classes of `data` as
      [`as_labeled_sampler`][gpm_sde.train.as_labeled_sampler] takes them: an integer array
      `(N,)` aligned with a data array, `"components"` for a mixture law (class = component)
      or `"paired"` for a callable `(key, n) -> (batch, labels)`. The discriminator is then
      called `D(s, x, y)`, see above.
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
        eta=eta,
        t1=t1,
        entropy_reg=entropy_reg,
        prior=prior,
        loss=loss,
        d_steps=d_steps,
        batch_size=batch_size,
        penalty=penalty,
        penalty_weight=penalty_weight,
        labels=labels,
    )
    state = discriminator_flow_init(discriminator, opt, trainable=trainable)
    state, history = run_loop(
        "train_discriminator_flow", step, state, key, steps=steps, **{"chunk": 10, **loop}
    )
    return state.models(), history


def _with_time(s: Array, x: Array) -> Array:
    """Rows $(s_i, \\operatorname{vec} x_i)$, so a penalty on one input sees both."""
    return jnp.concatenate([s[:, None].astype(x.dtype), x.reshape(x.shape[0], -1)], axis=1)


def _data_sampler(data: Any, labels: Any) -> Callable[[PRNGKeyArray, int], tuple[Array, Any]]:
    """`(key, n) -> (points, labels)`: labelled pairs with `labels`, else `(points, None)`."""
    if labels is not None:
        return as_labeled_sampler(data, labels)
    sample = as_sampler(data)
    return lambda key, n: (sample(key, n), None)
