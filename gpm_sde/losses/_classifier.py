r"""The cross-entropy of a time-conditioned noisy classifier on noised data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import check_batch, check_callable, check_finite, check_positive, is_concrete
from ..processes import AbstractLinearProcess


def noisy_classifier_loss(
    classifier: Callable[..., Any],
    process: AbstractLinearProcess,
    x0: Float[Array, " n *event"],
    labels: ArrayLike,
    key: PRNGKeyArray,
    *,
    t_min: float = 1e-5,
    reduction: str = "mean",
) -> Float[Array, ""] | Float[Array, " n"]:
    r"""The cross-entropy of a noisy classifier on noised data (Dhariwal & Nichol 2021,
    sec. 4: the classifier is trained on noisy images $x_t$ to predict the class):

    $$\mathcal{L}(\phi) = \mathbb{E}_{t\sim\mathcal{U}(t_{\min}, T)}\,
    \mathbb{E}_{(x_0, y), \varepsilon}\big[-\log p_\phi(y\mid t, x_t)\big],\qquad
    x_t = \alpha(t)x_0 + \sigma(t)\varepsilon,$$

    with $\log p_\phi(y\mid t, x) = \ell_y - \log\sum_k e^{\ell_k}$ from the logits
    $\ell = $ `classifier(t, x)`. Over all functions its minimiser is the true posterior
    $p_t(y\mid x)$ of the noised data at every $t$, and the minimum is the conditional
    entropy $\mathbb{E}_t H(Y\mid X_t)$; the excess of any classifier over it is
    $\mathbb{E}_t\mathbb{E}_{x_t}\mathrm{KL}\big(p_t(\cdot\mid x_t)\,\|\,p_\phi(\cdot\mid t,
    x_t)\big) \ge 0$.

    **Arguments:**

    - `classifier`: logits `classifier(t, x) -> (K,)` on one point (vmapped over the batch).
    - `process`: the linear forward process.
    - `x0`: a batch of data `(n, *event)`.
    - `labels`: the integer classes of the batch, shape `(n,)`.
    - `key`: PRNG key for the times and the noise.
    - `t_min`: the smallest time.
    - `reduction`: `"mean"` for the batch mean, `"none"` for one loss per point.
    """
    if not isinstance(process, AbstractLinearProcess):
        raise TypeError(
            f"`process` must be a linear forward process such as `gpm_sde.vp()`, got "
            f"{type(process).__name__}."
        )
    check_callable("classifier", classifier, "(t, x) -> logits (K,) on one point")
    if reduction not in ("mean", "none"):
        raise ValueError(
            f"`reduction` must be 'mean' (the batch mean) or 'none' (one loss per point), got "
            f"{reduction!r}."
        )
    check_batch("x0", x0, min_ndim=2)
    check_finite("x0", x0, "remove or impute non-finite data")
    lab = jnp.asarray(labels)
    if not jnp.issubdtype(lab.dtype, jnp.integer) or lab.shape != (x0.shape[0],):
        raise ValueError(
            f"`labels` must be the integer classes of the batch, shape ({x0.shape[0]},), got "
            f"dtype {lab.dtype} and shape {lab.shape}; pass e.g. `labels=y.astype(int)`."
        )
    check_positive("t_min", t_min, fix="pass a small positive time, e.g. t_min=1e-5")
    if is_concrete(t_min) and not float(t_min) < process.T:
        raise ValueError(
            f"`t_min` must be below the time horizon T = {process.T}, got {t_min!r}; pass e.g. "
            f"t_min=1e-5."
        )
    k_t, k_eps = jr.split(key)
    n, dtype = x0.shape[0], x0.dtype
    t = jr.uniform(k_t, (n,), dtype=dtype, minval=t_min, maxval=process.T)
    eps = jr.normal(k_eps, x0.shape, dtype=dtype)
    shape = (-1,) + (1,) * (x0.ndim - 1)
    xt = jnp.reshape(process.alpha(t), shape) * x0 + jnp.reshape(process.sigma(t), shape) * eps
    logits = jax.vmap(classifier)(t, xt)
    if logits.ndim != 2:
        raise ValueError(
            f"`classifier` must return the logits (K,) of one point, got shape "
            f"{logits.shape[1:]} per point."
        )
    if is_concrete(lab) and (int(lab.min()) < 0 or int(lab.max()) >= logits.shape[1]):
        raise ValueError(
            f"`labels` must be classes in [0, {logits.shape[1]}) for a classifier with "
            f"{logits.shape[1]} logits, got labels from {int(lab.min())} to {int(lab.max())}."
        )
    log_p = jax.nn.log_softmax(logits, axis=-1)
    per_point = -jnp.take_along_axis(log_p, lab[:, None], axis=1)[:, 0]
    return jnp.mean(per_point) if reduction == "mean" else per_point
