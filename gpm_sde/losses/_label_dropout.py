r"""Label dropout for classifier-free training."""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Int, PRNGKeyArray


def drop_labels(
    key: PRNGKeyArray, labels: Int[ArrayLike, " n"], p: float, null_label: int
) -> Int[Array, " n"]:
    r"""Replace each label by the null label with probability $p$, independently:

    $$\tilde y_i = \begin{cases}\varnothing & \text{with probability } p,\\ y_i &
    \text{otherwise,}\end{cases}$$

    so one network learns the conditional score $s(t, x\mid y)$ and the unconditional one
    $s(t, x) = s(t, x\mid\varnothing)$ at once (Ho & Salimans 2022, sec. 3.2, algorithm 1).

    **Arguments:**

    - `key`: PRNG key.
    - `labels`: integer labels, shape `(n,)`.
    - `p`: the dropout probability, in $[0, 1]$.
    - `null_label`: the index of the null label $\varnothing$ (for
      [`ScoreMLP`][gpm_sde.nn.ScoreMLP] built with `num_classes=K`, pass `K`).

    **Returns:** the labels with a fraction $\approx p$ replaced by `null_label`.
    """
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"`p` must be a probability in [0, 1], got {p}; pass e.g. `p=0.1`.")
    labels = jnp.asarray(labels)
    drop = jr.bernoulli(key, p, labels.shape)
    return jnp.where(drop, jnp.asarray(null_label, labels.dtype), labels)
