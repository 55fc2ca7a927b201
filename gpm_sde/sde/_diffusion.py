r"""Diffusion terms: the (diagonal) noise coefficient of $dy = b\,ds + G\,dW$."""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._checks import check_positive, is_concrete
from ..schedules import AbstractSchedule, Constant, Schedule, as_schedule


class AbstractDiffusion(eqx.Module):
    r"""A diagonal diffusion: `diffusion(s, y, args)` returns the diagonal of $G(s, y)$, the same
    shape as the cloud `y`, so that the noise increment is $G \odot dW$."""

    @abc.abstractmethod
    def __call__(
        self, s: Float[ArrayLike, ""], y: Float[Array, " n *event"], args: PyTree = None
    ) -> Float[Array, " n *event"]:
        """The diagonal of the diffusion matrix at time `s`."""


class ScalarDiffusion(AbstractDiffusion):
    r"""Isotropic, state-independent noise $G(s, y) = g(s)\, I$.

    This is the diffusion of every SDE of the seeds, and the one for which
    [`reweight_noise`][gpm_sde.reweight_noise] and the Fokker–Planck operator take their simple
    form $\tfrac12 g^2 \Delta p$.

    **Arguments:**

    - `g`: the schedule $g(s) \ge 0$ (float or callable).
    """

    g: AbstractSchedule

    def __init__(self, g: Schedule):
        self.g = as_schedule(g, "g")
        if isinstance(self.g, Constant) and is_concrete(self.g.value):
            check_positive("g", self.g.value, strict=False, fix="g is a noise scale")

    def __call__(self, s, y, args=None):
        return jnp.broadcast_to(jnp.asarray(self.g(s), dtype=y.dtype), y.shape)
