"""`Samples`: what every sampler returns."""

from __future__ import annotations

import equinox as eqx
from jaxtyping import Array, Float, PyTree


class Samples(eqx.Module):
    r"""What every sampler returns: the final cloud, and the intermediate clouds it was asked to
    keep.

    **Fields:**

    - `x`: the samples, the final cloud `(n, *event)` (the denoised mean of the last step with
      `predictor_corrector(..., denoise=True)`).
    - `ts`: the generation times $s$ of the saved clouds `(k,)`, or `None` when nothing was
      saved (only the samplers that take a `saveat` save; the exact law at $s$ is
      $p_{T-s}$).
    - `ys`: the saved clouds `(k, n, *event)`, or `None`.

    An `eqx.Module`, so a pytree: it passes through `jax.jit`, `jax.vmap` and
    `eqx.filter_jit` like an array.
    """

    x: Float[Array, " n *event"]
    ts: Float[Array, " k"] | None = None
    ys: PyTree[Float[Array, " k n *event"]] | None = None
