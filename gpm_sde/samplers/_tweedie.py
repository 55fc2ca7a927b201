r"""Tweedie's denoising step: the posterior mean of the clean data given a noisy cloud."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Real

from .._checks import check_callable, check_float_array
from ..processes import AbstractLinearProcess
from ..scores import check_score, on_cloud
from ._common import check_end_time, check_process


def tweedie_denoise(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    t: Real[ArrayLike, ""],
    y: Float[Array, " n *event"],
) -> Float[Array, " n *event"]:
    r"""Map a cloud at diffusion time $t$ to the posterior means of its clean points, by
    Tweedie's formula (Efron 2011, eq. 2.8) for $x_t = \alpha(t)x_0 + \sigma(t)\varepsilon$:

    $$\mathbb{E}[x_0 \mid x_t = y] = \frac{y + \sigma(t)^2\,\nabla\log p_t(y)}{\alpha(t)}.$$

    Applied to the output of a sampler that stops at $t = \epsilon > 0$ (e.g.
    [`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample] with `eps`), this is the
    final noise-free step of Song et al. (2021, App. G; `noise_removal` in their code) and of
    Jolicoeur-Martineau et al. (2021, §3), which removes the noise a finite-step solver leaves
    in its last iterate. It costs one score evaluation per point.

    **Arguments:**

    - `process`: the forward process; `score`: its score `score(t, x)`, pointwise on one point
      or a cloud score (called on the whole cloud).
    - `t`: the diffusion time of the cloud (the sampler's `eps`), in $[0, T)$; at $t = 0$
      with $\sigma(0) = 0$ the map is the identity.
    - `y`: the cloud `(n, *event)`.

    **Returns:** the denoised cloud, of the shape of `y`.
    """
    check_process(process)
    check_callable("score", score, "(t, x) -> ∇log p_t(x)")
    check_end_time(process, t, "t")
    check_float_array("y", y, None)
    y = jnp.asarray(y)
    if y.ndim < 1:
        raise ValueError(f"`y` must be a cloud `(n, *event)`, got shape {y.shape}.")
    t_arr = jnp.asarray(t, y.dtype)
    alpha, sigma = process.alpha(t_arr), process.sigma(t_arr)
    check_score(score, t_arr, y, name="`score` of `tweedie_denoise`")
    scores = on_cloud(score, t_arr, y)
    return ((y + sigma**2 * scores) / alpha).astype(y.dtype)
