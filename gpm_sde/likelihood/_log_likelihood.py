r"""Log-likelihoods by the instantaneous change of variables along a deterministic flow: the
probability-flow ODE of a forward process (Song et al. 2021, §4.3, app. D.2) and any flow in
generation time, such as DiffFlow at $g = 0$ (Zhang et al. 2023)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray, PyTree

from .._checks import (
    IntLike,
    check_batch,
    check_finite,
    check_int,
    check_key,
    check_positive,
    check_scalar,
    is_concrete,
)
from ..processes import AbstractLinearProcess
from ..scores import couples_particles
from ..sde import SDE, AbstractDrift, FunctionDrift, probability_flow


class _Velocity(eqx.Module):
    r"""$v(u, z) = -b(s_1 - u, z)$ on one point: the flow's drift read backwards in the reversed
    time $u = s_1 - s$, evaluated on the one-point cloud `z[None]`."""

    drift: AbstractDrift
    s1: Array
    args: PyTree

    def __call__(self, u, z):
        return -self.drift(self.s1 - u, z[None], self.args)[0]


class _AugmentedField(eqx.Module):
    r"""$(z, \ell) \mapsto (v(u, z), \nabla\cdot v(u, z))$ for one point $z$."""

    velocity: _Velocity
    trace: str = eqx.field(static=True)

    def __call__(self, u, state, probes):
        z, _ = state
        flat = z.reshape(-1)

        def v_flat(w):
            return self.velocity(u, w.reshape(z.shape)).reshape(-1)

        if self.trace == "exact":
            jac, vel = jax.jacfwd(lambda w: (v_flat(w), v_flat(w)), has_aux=True)(flat)
            return vel.reshape(z.shape), jnp.trace(jac)
        # Hutchinson: E[ε^T (∂v/∂z) ε] = tr(∂v/∂z) for Rademacher ε (Hutchinson 1989).
        eps = probes.reshape(probes.shape[0], -1)
        vel, jvps = jax.vmap(lambda e: jax.jvp(v_flat, (flat,), (e,)), out_axes=(None, 0))(eps)
        return vel.reshape(z.shape), jnp.mean(jnp.sum(eps * jvps, axis=1))


def _fmix32(h: Array) -> Array:
    """MurmurHash3's 32-bit finaliser: a bijective avalanche mix of `uint32` words."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _point_key(key: PRNGKeyArray, z: Array) -> PRNGKeyArray:
    """`key` folded with a hash of the bits of the point `z`: a key that depends on the point's
    value only, not on its index in the batch nor on its batch mates."""
    if jnp.finfo(z.dtype).bits < 32:
        z = z.astype(jnp.float32)
    words = jax.lax.bitcast_convert_type(z.reshape(-1), jnp.uint32).reshape(-1)
    position = jnp.arange(words.size, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9)
    digest = _fmix32(jnp.sum(_fmix32(words ^ position), dtype=jnp.uint32))
    return jr.fold_in(key, digest)


@eqx.filter_jit
def _solve_points(
    drift: AbstractDrift,
    s1: Float[Array, ""],
    u1: Float[Array, ""],
    args: PyTree,
    x: Float[Array, " n *event"],
    key: PRNGKeyArray | None,
    trace: str,
    probes: int,
    rtol: Float[Array, ""],
    atol: Float[Array, ""],
    solver: diffrax.AbstractSolver,
    max_steps: int,
) -> tuple[Float[Array, " n *event"], Float[Array, " n"], Bool[Array, " n"], Int[Array, " n"]]:
    r"""One adaptive solve per point (a `vmap` over single-point solves, so each point has its
    own step sizes): the end point $z(u_1)$, $\int_0^{u_1}\nabla\cdot v\,du$, whether the solve
    failed, and its number of steps."""
    field = _AugmentedField(_Velocity(drift, s1, args), trace)
    controller = diffrax.PIDController(rtol=rtol, atol=atol)

    def one(z0):
        if trace == "exact":
            noise = jnp.zeros((0,), dtype=z0.dtype)
        else:
            assert key is not None
            noise = jr.rademacher(_point_key(key, z0), (probes, *z0.shape), dtype=z0.dtype)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            solver,
            t0=jnp.zeros_like(u1),
            t1=u1,
            dt0=None,
            y0=(z0, jnp.zeros((), dtype=z0.dtype)),
            args=noise,
            stepsize_controller=controller,
            max_steps=max_steps,
            throw=False,  # failures are raised by the caller, per point and with the fixes
        )
        assert sol.ys is not None
        z_end, integral = sol.ys[0][0], sol.ys[1][0]
        failed = (sol.result != diffrax.RESULTS.successful) | ~(
            jnp.all(jnp.isfinite(z_end)) & jnp.isfinite(integral)
        )
        return z_end, integral, failed, sol.stats["num_steps"]

    return jax.vmap(one)(x)


def _cloud_scores(drift: AbstractDrift) -> list[Any]:
    """Every cloud score ([`AbstractCloudScore`][gpm_sde.scores.AbstractCloudScore]) anywhere in
    the drift's tree of modules."""
    leaves = jax.tree_util.tree_leaves(drift, is_leaf=couples_particles)
    return [leaf for leaf in leaves if couples_particles(leaf)]


def _check_pointwise(drift: AbstractDrift, x: Array, s1: Any, args: PyTree, what: str) -> None:
    """Refuse a drift that couples the particles: one with a cloud score in it, or an opaque
    `FunctionDrift` whose value on the cloud differs from its value on one-point clouds."""
    clouds = _cloud_scores(drift)
    if clouds:
        raise ValueError(
            f"{what} contains a cloud score ({type(clouds[0]).__name__}), which estimates the "
            f"score from all the particles together: each particle's velocity then depends on "
            f"the others, the flow moves the cloud as a whole, and one point has no "
            f"change-of-variables density of its own. Pass a pointwise score `(s, x)` on one "
            f"point instead (a trained network, or an exact score such as "
            f"`gpm_sde.flows.GaussianDiffFlow`)."
        )
    functions = jax.tree_util.tree_leaves(drift, is_leaf=lambda v: isinstance(v, FunctionDrift))
    if x.shape[0] < 2 or not any(isinstance(f, FunctionDrift) for f in functions):
        return
    if not is_concrete(drift, x, s1, args):
        return
    whole, alone = _drift_both_ways(drift, jnp.asarray(s1, dtype=x.dtype), x, args)
    whole, alone = np.asarray(whole), np.asarray(alone)
    tol = 10.0 * math.sqrt(float(jnp.finfo(x.dtype).eps))
    gap = float(np.max(np.abs(whole - alone)))
    if not gap <= tol * (1.0 + float(np.max(np.abs(whole)))):
        raise ValueError(
            f"{what} couples the particles: evaluated at s = {float(s1):g} on the whole cloud "
            f"`x` and on each point alone it differs by up to {gap:.3g}. A mean-field "
            f"(interacting-particle) drift moves the cloud as a whole, and one point has no "
            f"change-of-variables density of its own; pass a drift that acts on each particle "
            f"separately."
        )


@eqx.filter_jit
def _drift_both_ways(drift, s, x, args):
    whole = drift(s, x, args)
    alone = jax.vmap(lambda z: drift(s, z[None], args)[0])(x)
    return whole, alone


def _check_solver_args(
    x: Any, trace: Any, probes: Any, key: Any, rtol: Any, atol: Any, max_steps: Any, solver: Any
) -> None:
    """The checks shared by both entry points."""
    check_batch("x", x, min_ndim=2, what="points (one point per row)")
    check_finite("x", x)
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"`trace` must be 'exact' or 'hutchinson', got {trace!r}.")
    check_int("probes", probes, 1, "Hutchinson probe vectors per point", example=1)
    check_key("key", key, optional=trace != "hutchinson", what="the Hutchinson probes")
    for name, value in (("rtol", rtol), ("atol", atol)):
        check_scalar(name, value)
        check_positive(
            name, value, fix="the adaptive solver's tolerances must be finite and > 0, e.g. 1e-5"
        )
    check_int("max_steps", max_steps, 1, "the step budget of each point's solve", example=4096)
    if solver is not None and not isinstance(solver, diffrax.AbstractSolver):
        raise TypeError(
            f"`solver` must be None or a diffrax.AbstractSolver instance, got {solver!r}."
        )


def _check_start(name: str, law: Any) -> None:
    if not callable(getattr(law, "log_prob", None)):
        raise TypeError(
            f"`{name}` must be a law with a pointwise `log_prob(x)`, such as "
            f"`gpm_sde.GaussianMixture` or `gpm_sde.IsotropicNormal`, got {type(law).__name__}."
        )


def _integrate(
    drift: AbstractDrift,
    law: Any,
    x: Array,
    s1: Any,
    u1: Any,
    args: PyTree,
    *,
    key: PRNGKeyArray | None,
    trace: str,
    probes: int,
    rtol: Any,
    atol: Any,
    solver: diffrax.AbstractSolver | None,
    max_steps: int,
    who: str,
    fixes: str,
) -> Array:
    r"""$\log p(x) = \log\pi(z(u_1)) + \int_0^{u_1}\nabla\cdot v(u, z(u))\,du$ per point, with
    $v(u, z) = -b(s_1 - u, z)$, $z(0) = x$; raises on a failed solve."""
    x = jnp.asarray(x)
    time_dtype = jnp.result_type(float)
    z_end, integral, failed, steps = _solve_points(
        drift,
        jnp.asarray(s1, dtype=time_dtype),
        jnp.asarray(u1, dtype=time_dtype),
        args,
        x,
        key,
        trace,
        probes,
        jnp.asarray(rtol, dtype=time_dtype),
        jnp.asarray(atol, dtype=time_dtype),
        diffrax.Tsit5() if solver is None else solver,
        int(max_steps),
    )
    out = jax.vmap(law.log_prob)(z_end) + integral
    where = (
        f"Raise `max_steps` (now {int(max_steps)}; each point has its own budget), loosen "
        f"`rtol`/`atol`, or check that the drift is finite along the path{fixes}."
    )
    if is_concrete(failed):
        bad = np.flatnonzero(np.asarray(failed))
        if bad.size:
            shown = ", ".join(str(i) for i in bad[:8]) + (", …" if bad.size > 8 else "")
            reason = (
                "the maximum number of solver steps was reached"
                if np.any(np.asarray(steps)[bad] >= int(max_steps))
                else "the solve stopped early or gave NaN/inf"
            )
            raise RuntimeError(
                f"{who}: the adaptive ODE solve failed for {bad.size} of {x.shape[0]} points "
                f"(indices {shown}): {reason}. {where}"
            )
        return out
    return eqx.error_if(
        out, jnp.any(failed), f"{who}: the adaptive ODE solve failed for some points. {where}"
    )


def log_likelihood(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    x: Float[Array, " n *event"],
    *,
    key: PRNGKeyArray | None = None,
    trace: Literal["exact", "hutchinson"] = "exact",
    probes: IntLike = 1,
    eps: float = 1e-5,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    solver: diffrax.AbstractSolver | None = None,
    max_steps: IntLike = 4096,
    prior: Any = None,
) -> Float[Array, " n"]:
    r"""Log-density of each point of `x` under the model defined by `score`, in nats.

    Along the probability-flow ODE $\dot x_t = v(t, x_t)$, $v = f(t)x - \tfrac12 g(t)^2
    \nabla\log p_t(x)$, the density obeys $\frac{d}{dt}\log p_t(x_t) = -\nabla\cdot v(t, x_t)$
    (instantaneous change of variables; Chen et al. 2018, thm. 1). Integrating data to noise,
    forward in diffusion time from $t = \epsilon$ to $T$ (no reversal is needed for an ODE),

    $$\log p_\epsilon(x_\epsilon) = \log \pi(x_T) + \int_\epsilon^T \nabla\cdot v(t, x_t)\,dt,$$

    with $\pi$ the process's prior (Song et al. 2021, eq. 39). The velocity is the
    [`probability_flow`][gpm_sde.probability_flow] drift read backwards, $v(t, x) = -b(T - t,
    x)$. The divergence is exact (`trace="exact"`, a Jacobian per point: small dimensions) or
    the Hutchinson estimate $\varepsilon^\top (\partial v/\partial x)\,\varepsilon$ averaged over
    `probes` Rademacher vectors held fixed along the path (Grathwohl et al. 2019), which is
    unbiased for the integral.

    **Each point is solved on its own.** The solve is a `vmap` over single-point adaptive
    solves, each with its own step sizes, so a point's log-density does not depend on which
    points share its batch (batch and one-at-a-time results agree to round-off). The
    Hutchinson probes of a point are drawn from `key` folded with a hash of the point's value,
    so they do not depend on its index or its batch mates either; two copies of one point get
    the same probes (for independent estimates of one point, vary `key` or raise `probes`).
    This is [`flow_log_likelihood`][gpm_sde.flow_log_likelihood] applied to
    `probability_flow(process, score)` from $s = 0$ to $s = T - \epsilon$.

    **Arguments:**

    - `process`: the forward process; `score`: its pointwise score `score(t, x)` on one point
      (a mean-field cloud score is refused: it couples the points; a batched per-point one,
      e.g. from `from_batched`, is accepted).
    - `x`: data points `(N, *event)`, read as samples at $t = \epsilon$.
    - `key`: PRNG key for the Hutchinson probes (required then).
    - `trace`: `"exact"` or `"hutchinson"`; `probes`: the number of Hutchinson probes.
    - `eps`: the start time $\epsilon > 0$; `rtol`, `atol`: tolerances (finite, $> 0$) of each
      point's adaptive solver (default `diffrax.Tsit5()` with a PID controller); `max_steps`:
      each point's step budget, an int $\ge 1$.
    - `prior`: the law $\pi$ at $T$, anything with a pointwise `log_prob`; default
      `process.prior`. The gap between $\pi$ and the true $p_T$ is the method's only bias
      besides the solver's (for VP at $T = 1$, $\alpha(T) \approx 0.007$, it is below
      $10^{-2}$ nats for data of unit scale); pass the exact $p_T$ to remove it in tests.

    **Returns:** $\log p(x_i)$ per point, in nats. See [`bits_per_dim`][gpm_sde.bits_per_dim].

    **Raises:** `RuntimeError` naming the points whose solve failed (e.g. `max_steps` reached)
    when called eagerly; inside `jax.jit`/`jax.vmap`, equinox's runtime error (`eqx.error_if`).
    """
    if not isinstance(process, AbstractLinearProcess):
        raise TypeError(f"`process` must be a forward process, got {type(process).__name__}.")
    _check_solver_args(x, trace, probes, key, rtol, atol, max_steps, solver)
    check_positive("eps", eps, fix="start the flow slightly after t = 0, e.g. eps=1e-5")
    if not eps < process.T:
        raise ValueError(f"`eps` must be < T = {process.T}, got {eps}.")
    if couples_particles(score):
        raise ValueError(
            f"`score` is a cloud score ({type(score).__name__}), which estimates the score from "
            f"all the particles together, so one point has no density of its own under it; "
            f"pass a pointwise score `(t, x) -> ∇log p_t(x)` on one point."
        )
    prior = process.prior if prior is None else prior
    _check_start("prior", prior)
    flow = probability_flow(process, score)
    s1 = process.T - eps
    flow.check_scores(jnp.asarray(s1, dtype=jnp.result_type(float)), jnp.asarray(x))
    _check_pointwise(flow.drift, jnp.asarray(x), s1, None, "`score`")
    return _integrate(
        flow.drift,
        prior,
        x,
        s1,
        s1,
        None,
        key=key,
        trace=trace,
        probes=int(probes),
        rtol=rtol,
        atol=atol,
        solver=solver,
        max_steps=int(max_steps),
        who="log_likelihood",
        fixes=" (the score grows like 1/σ(t)² near t = 0: a larger `eps`, e.g. 1e-3, eases it)",
    )


def flow_log_likelihood(
    sde: SDE,
    start: Any,
    x: Float[Array, " n *event"],
    *,
    s1: Float[ArrayLike, ""],
    s0: Float[ArrayLike, ""] = 0.0,
    args: PyTree = None,
    key: PRNGKeyArray | None = None,
    trace: Literal["exact", "hutchinson"] = "exact",
    probes: IntLike = 1,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    solver: diffrax.AbstractSolver | None = None,
    max_steps: IntLike = 4096,
) -> Float[Array, " n"]:
    r"""Log-density $\log p_{s_1}(x)$ of each point of `x` under a deterministic flow in
    generation time, $\frac{dy}{ds} = b(s, y)$ with $y(s_0) \sim p_{s_0}$ = `start`, in nats.

    By the instantaneous change of variables (Chen et al. 2018, thm. 1),
    $\frac{d}{ds}\log p_s(y(s)) = -\nabla\cdot b(s, y(s))$ along each trajectory, so

    $$\log p_{s_1}(x) = \log p_{s_0}\big(y(s_0)\big) - \int_{s_0}^{s_1}\nabla\cdot b\big(s,
    y(s)\big)\,ds, \qquad y(s_1) = x .$$

    The trajectory is followed back from $x$ in the reversed time $u = s_1 - s \in [0, s_1 -
    s_0]$, $\frac{dz}{du} = v(u, z) = -b(s_1 - u, z)$, so that the solver always runs forward
    and $\log p_{s_1}(x) = \log p_{s_0}(z(s_1 - s_0)) + \int_0^{s_1 - s_0}\nabla\cdot v\,du$.
    The divergence is exact (`trace="exact"`, a Jacobian per point: small dimensions) or the
    Hutchinson estimate $\varepsilon^\top(\partial v/\partial z)\,\varepsilon$ averaged over
    `probes` Rademacher vectors held fixed along the path (Grathwohl et al. 2019). Each point
    has its own adaptive solve (see [`log_likelihood`][gpm_sde.log_likelihood]): its value does
    not depend on its batch mates, nor, with Hutchinson probes, on its index.

    With DiffFlow at $g = 0$ ([`diffflow`][gpm_sde.diffflow] or
    [`gan_flow`][gpm_sde.gan_flow]), whose drift is $f + \beta\nabla\log(q_\sigma/p_s)$, and a
    known or learned generated score $\nabla\log p_s$, this is DiffFlow's exact likelihood
    (Zhang et al. 2023, abstract). Every member $g > 0$ has the same marginals, so its
    likelihood is that of the $g = 0$ flow: pass that flow here.

    **Arguments:**

    - `sde`: an [`SDE`][gpm_sde.SDE] with no diffusion (`sde.diffusion is None`), whose drift
      acts on each particle separately: it is evaluated on one-point clouds `y[None]`. A drift
      with a cloud score in it (a mean-field estimate such as
      [`KernelScore`][gpm_sde.scores.KernelScore]) couples the particles and is refused, as is
      a `FunctionDrift` that gives different values on the cloud and on each point alone.
    - `start`: the law $p_{s_0}$ at $s_0$, anything with a pointwise `log_prob(x)` (e.g.
      [`GaussianMixture`][gpm_sde.GaussianMixture],
      [`IsotropicNormal`][gpm_sde.IsotropicNormal]).
    - `x`: points `(N, *event)` at generation time $s_1$.
    - `s1`: the time of `x`; `s0`: the time of `start` ($s_0 < s_1$).
    - `args`: passed to the drift as `drift(s, y, args)`.
    - `key`, `trace`, `probes`, `rtol`, `atol`, `solver`, `max_steps`: as in
      [`log_likelihood`][gpm_sde.log_likelihood].

    **Returns:** $\log p_{s_1}(x_i)$ per point, in nats.

    **Raises:** `ValueError` for an SDE with a diffusion term or a drift that couples the
    particles; `RuntimeError` naming the points whose solve failed.
    """
    if not isinstance(sde, SDE):
        raise TypeError(
            f"`sde` must be a gpm_sde.SDE with no diffusion (a flow), got {type(sde).__name__}."
        )
    if not sde.is_ode:
        raise ValueError(
            "`sde` has a diffusion term: along a stochastic path a point's density has no "
            "change-of-variables formula. Pass the deterministic flow with the same marginals "
            "instead: for DiffFlow `diffflow(real_score, gen_score, beta, g=0.0, f)` (a literal "
            "0, so that it has no diffusion; every g has the same marginals), for a forward "
            "process `probability_flow(process, score)`, and for any SDE with a known "
            "generated score `reweight_noise(sde, gen_score, 0.0)`."
        )
    _check_start("start", start)
    _check_solver_args(x, trace, probes, key, rtol, atol, max_steps, solver)
    for name, value in (("s0", s0), ("s1", s1)):
        check_scalar(name, value)
        check_finite(name, value)
    if is_concrete(s0, s1) and not float(np.asarray(s1)) > float(np.asarray(s0)):
        raise ValueError(
            f"`s1` must be greater than `s0` (got s0={float(np.asarray(s0))}, "
            f"s1={float(np.asarray(s1))}): `start` is the law at s0 and `x` holds points at the "
            f"later time s1."
        )
    sde.check_scores(jnp.asarray(s1, dtype=jnp.result_type(float)), jnp.asarray(x))
    _check_pointwise(sde.drift, jnp.asarray(x), s1, args, "`sde`'s drift")
    return _integrate(
        sde.drift,
        start,
        x,
        s1,
        jnp.asarray(s1) - jnp.asarray(s0),
        args,
        key=key,
        trace=trace,
        probes=int(probes),
        rtol=rtol,
        atol=atol,
        solver=solver,
        max_steps=int(max_steps),
        who="flow_log_likelihood",
        fixes="",
    )


def bits_per_dim(
    log_prob: Float[ArrayLike, "*n"], event_size: int, scale: float = 1.0
) -> Float[Array, "*n"]:
    r"""Bits per dimension, $-\big(\log p(x) + D\log s\big) / (D \ln 2)$.

    `log_prob` is in nats for the model's variable $x = s\,u$ of the data $u$; the change of
    variables $\log p_u(u) = \log p_x(x) + D\log s$ reports it in the data's units (e.g.
    $s = 2/256$ for 8-bit data rescaled to $[-1, 1]$, with uniform dequantisation; Ho et al.
    2020, §4.2). $D$ is `event_size`, the number of entries of one point.
    """
    if event_size < 1:
        raise ValueError(f"`event_size` must be >= 1, got {event_size}.")
    check_positive("scale", scale)
    log_prob = jnp.asarray(log_prob)
    return -(log_prob + event_size * math.log(scale)) / (event_size * math.log(2.0))
