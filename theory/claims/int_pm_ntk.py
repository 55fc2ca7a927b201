r"""Claim `int-pm-ntk` (texts in `int_pm_ntk.md`): one SGD step on the Int-PM loss moves the
generator's outputs along the field projected by the neural tangent kernel, up to $O(\eta^2)$."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from gpm_sde import int_pm_loss
from gpm_sde.flows import DiscriminatorField, discriminator_field
from gpm_sde.nn import MLPDiscriminator, MLPGenerator

from ..figures import Curve, CurvePanel, panel_row
from ..types import Claim, Measurement, Parts, table

SEED = 2023_1210
N_LATENTS = 64
S = 0.3  # the time passed to the (time-conditioned) discriminator field
ETAS = 0.1 * 0.5 ** np.arange(12)  # learning rates, 0.1 down to 5e-5
ROUND_OFF = 1e-12  # (i) the loss gradient against −Jᵀ∇h/n
ORDER_TOLERANCE = 0.05  # (ii), (iii) fitted orders against 2 and 3


@eqx.filter_jit
def _problem(key: PRNGKeyArray) -> tuple[MLPGenerator, DiscriminatorField, Array]:
    """Built under `jit`: eager initialisation would dispatch (and compile) op by op."""
    kg, kd, kz = jr.split(key, 3)
    generator = MLPGenerator(2, 2, 16, 2, key=kg, activation=jnp.tanh)
    discriminator = MLPDiscriminator(2, 16, 2, key=kd, time_conditioned=True, activation=jnp.tanh)
    field = discriminator_field(discriminator, "nonsaturating")
    return generator, field, jr.normal(kz, (N_LATENTS, 2))


@eqx.filter_jit
def _analysis(problem: tuple, etas: Float[ArrayLike, " k"]) -> tuple[Array, ...]:
    r"""With a smooth generator, the field of a fixed smooth discriminator and the latents
    (`problem`), $\theta$ the generator's flattened parameters and $x(\theta)$ its outputs on the
    latents: the loss gradient $g$, the field $v = \nabla h(x)$, the Jacobian $J = \partial x/
    \partial\theta$, for every learning rate $\eta$ the displacement $x(\theta - \eta g) -
    x(\theta)$ (the generator after one SGD step), the second directional derivative of the
    outputs along $-g$ (for the $O(\eta^2)$ term), $x$ and $\theta$."""
    generator, field, z = problem
    params, static = eqx.partition(generator, eqx.is_inexact_array)
    theta, unravel = ravel_pytree(params)
    s = jnp.asarray(S)

    def outputs(th: Array) -> Array:
        return jax.vmap(eqx.combine(unravel(th), static))(z).ravel()

    g = jax.grad(lambda th: int_pm_loss(eqx.combine(unravel(th), static), field, z, s))(theta)
    x = outputs(theta)
    v = field(s, x.reshape(N_LATENTS, 2)).ravel()
    moved = jax.vmap(lambda eta: outputs(theta - eta * g) - x)(etas)
    curvature = jax.jvp(lambda th: jax.jvp(outputs, (th,), (-g,))[1], (theta,), (-g,))[1]
    return g, v, jax.jacfwd(outputs)(theta), moved, curvature, x, theta


def _order(etas: np.ndarray, errors: np.ndarray) -> float:
    """The least-squares slope of log(error) against log(η)."""
    return float(np.polyfit(np.log(etas), np.log(errors), 1)[0])


def run(fast: bool, out_dir: Path) -> Measurement:
    etas = ETAS if fast else 0.1 * 0.5 ** np.arange(16)
    g, v, jac, moved, curvature, x, theta = map(np.asarray, _analysis(_problem(jr.key(SEED)), etas))
    # (i) the loss's gradient is −Jᵀ∇h/n: the surrogate divides by n and stops the gradient
    grad_err = float(np.linalg.norm(g + jac.T @ v / N_LATENTS) / np.linalg.norm(g))
    ntk_direction = jac @ jac.T @ v / N_LATENTS  # η × this is the predicted displacement
    first = etas[:, None] * ntk_direction[None]
    second = first + 0.5 * etas[:, None] ** 2 * curvature[None]
    norm_moved = np.linalg.norm(moved, axis=1)
    err1 = np.linalg.norm(moved - first, axis=1)
    err2 = np.linalg.norm(moved - second, axis=1)
    no_n = np.linalg.norm(moved - N_LATENTS * first, axis=1)  # the prediction without the 1/n
    # fit the orders where the terms are resolved: err2 ~ η³ leaves round-off at small η
    low = etas <= 0.0125
    resolved = low & (err2 > 1e3 * np.finfo(float).eps * np.linalg.norm(x))
    order_move, order1, order_no_n = (_order(etas[low], e[low]) for e in (norm_moved, err1, no_n))
    order2 = _order(etas[resolved], err2[resolved])
    parts = Parts()
    parts.add("(i) ‖g + Jᵀ∇h/n‖ / ‖g‖", grad_err, ROUND_OFF)
    parts.add("(ii) \\|order of ‖Δx − ηJJᵀ∇h/n‖ − 2\\|", abs(order1 - 2), ORDER_TOLERANCE)
    label = "(iii) \\|order of ‖Δx − ηJJᵀ∇h/n − ½η²x''[g, g]‖ − 3\\|"
    parts.add(label, abs(order2 - 3), ORDER_TOLERANCE)
    rows = [
        [f"{eta:.2e}", f"{nm:.3e}", f"{e1:.3e}", f"{e1 / eta**2:.4f}", f"{e2:.2e}", f"{e0:.3e}"]
        for eta, nm, e1, e2, e0 in zip(etas, norm_moved, err1, err2, no_n, strict=True)
    ][:: 2 if fast else 3]
    along = v @ ntk_direction / (np.linalg.norm(v) * np.linalg.norm(ntk_direction))
    values = dict(
        parts=parts.table(), n_params=theta.size, n=N_LATENTS, s=S, order_move=order_move,
        order1=order1, order2=order2, order_no_n=order_no_n, along=along,
        steps=table(["η", "‖Δx‖", "‖Δx − ηJJᵀ∇h/n‖", "that / η²", "‖Δx − 2nd order‖",
                     "‖Δx − ηJJᵀ∇h‖ (no 1/n)"], rows),
    )  # fmt: skip
    log_eta, ref = np.log10(etas), etas / etas[0]
    curves = [
        Curve("‖Δx‖", log_eta, norm_moved, "o-"),
        Curve("‖Δx − ηJJᵀ∇h/n‖", log_eta, err1, "s-"),
        Curve("‖Δx − 2nd-order prediction‖", log_eta, err2, "^-"),
        Curve("‖Δx − ηJJᵀ∇h‖ (without 1/n)", log_eta, no_n, "x:"),
        Curve("∝ η², ∝ η³", log_eta, err1[0] * ref**2, ":", "gray"),
        Curve("", log_eta, err2[0] * ref**3, ":", "gray"),
    ]
    panel = CurvePanel("one SGD step of the Int-PM loss", curves, xlabel="log₁₀ η", log_y=True)
    title = "Int-PM: the step follows the NTK-projected field"
    figure = panel_row([panel], title, out_dir / "int-pm-ntk.png")
    return Measurement(parts.ratio, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
