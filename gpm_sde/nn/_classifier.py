r"""A time-conditioned noisy classifier $p_t(y \mid x)$ for classifier guidance, and its
log-probability of one label as the `(t, x) -> scalar` that guidance takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from .._checks import check_callable
from ._common import check_event, check_size
from ._embedding import FourierEmbedding


class NoisyClassifierMLP(eqx.Module):
    r"""A time-conditioned classifier on one noisy point, returning the logits of
    $p_t(y \mid x)$ over $K$ classes (the noisy classifier of classifier guidance, Dhariwal &
    Nichol 2021, sec. 4, here as an MLP):

    $$e = \operatorname{act}(A\,\gamma(t)),\qquad h_0 = B x,\qquad
    h_{k} = W_k\,\operatorname{act}(h_{k-1} + C_k e),\qquad
    \ell(t, x) = W_{\rm out}\operatorname{act}(h_L) \in \mathbb{R}^K,$$

    the layout of [`ScoreMLP`][gpm_sde.nn.ScoreMLP] with $K$ logits out;
    $\log p_t(y\mid x) = \ell_y - \log\sum_k e^{\ell_k}$. Train it with
    [`fit_classifier`][gpm_sde.train.fit_classifier] on noised data $x_t = \alpha_t x_0 +
    \sigma_t\varepsilon$, then guide with
    [`classifier_log_prob(clf, y)`][gpm_sde.nn.classifier_log_prob].

    **Arguments:**

    - `dim`: $d$, the data dimension.
    - `num_classes`: $K \ge 2$, the number of classes.
    - `hidden`: width of the hidden layers.
    - `depth`: number $L \ge 1$ of hidden layers.
    - `embed_dim`: size of the Fourier time embedding (even).
    - `key`: PRNG key.
    - `fourier_scale`: standard deviation of the Fourier frequencies (16 for $t \in [0, 1]$).
    - `activation`: elementwise nonlinearity (SiLU by default).

    Called as `clf(t, x)` with a scalar `t` and `x: (dim,)`; returns the logits `(num_classes,)`.
    """

    embedding: FourierEmbedding
    time_proj: eqx.nn.Linear
    inp: eqx.nn.Linear
    conds: tuple[eqx.nn.Linear, ...]
    layers: tuple[eqx.nn.Linear, ...]
    out: eqx.nn.Linear
    dim: int = eqx.field(static=True)
    num_classes: int = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        num_classes: int,
        hidden: int,
        depth: int,
        embed_dim: int,
        *,
        key: PRNGKeyArray,
        fourier_scale: float = 16.0,
        activation: Callable[[Array], Array] = jax.nn.silu,
    ):
        self.dim = check_size("dim", dim)
        self.num_classes = check_size("num_classes", num_classes, minimum=2)
        hidden = check_size("hidden", hidden)
        depth = check_size("depth", depth)
        embed_dim = check_size("embed_dim", embed_dim, even=True, minimum=2)
        keys = jr.split(key, 4 + 2 * depth)
        self.embedding = FourierEmbedding(embed_dim, key=keys[0], scale=fourier_scale)
        self.time_proj = eqx.nn.Linear(embed_dim, hidden, key=keys[1])
        self.inp = eqx.nn.Linear(dim, hidden, key=keys[2])
        self.conds = tuple(eqx.nn.Linear(hidden, hidden, key=k) for k in keys[4 : 4 + depth])
        self.layers = tuple(eqx.nn.Linear(hidden, hidden, key=k) for k in keys[4 + depth :])
        self.out = eqx.nn.Linear(hidden, self.num_classes, key=keys[3])
        self.activation = activation

    def __call__(
        self, t: Real[ArrayLike, ""], x: Float[Array, " dim"]
    ) -> Float[Array, " num_classes"]:
        check_event("x", x, (self.dim,), "the data dimension `dim`")
        act = self.activation
        e = act(self.time_proj(self.embedding(t)))
        h = self.inp(x)
        for cond, layer in zip(self.conds, self.layers, strict=True):
            h = layer(act(h + cond(e)))
        return self.out(act(h))


class ClassifierLogProb(eqx.Module):
    r"""The log-probability of one label under a noisy classifier,

    $$(t, x) \mapsto \log p_t(y\mid x) = \ell_y(t, x) - \log\sum_k e^{\ell_k(t, x)},$$

    the `log_classifier` of [`classifier_guidance`][gpm_sde.scores.classifier_guidance]
    (which differentiates it in $x$: $\nabla_x\log p_t(y\mid x)$, Dhariwal & Nichol 2021,
    sec. 4).

    **Arguments:**

    - `classifier`: logits `classifier(t, x) -> (K,)` on one point, e.g. a trained
      [`NoisyClassifierMLP`][gpm_sde.nn.NoisyClassifierMLP].
    - `label`: the class $y$ in `[0, K)`.
    """

    classifier: Callable[..., Any]
    label: Int[ArrayLike, ""]

    def __check_init__(self):
        check_callable("classifier", self.classifier, "(t, x) -> logits (K,) on one point")

    def __call__(self, t: Real[ArrayLike, ""], x: Float[Array, "*event"]) -> Float[Array, ""]:
        logits = self.classifier(t, x)
        if jnp.ndim(logits) != 1:
            raise ValueError(
                f"`classifier` must return the logits of one point, shape (K,), got shape "
                f"{jnp.shape(logits)}; call it on one point (vmap over a batch)."
            )
        return jax.nn.log_softmax(logits)[self.label]


def classifier_log_prob(
    classifier: Callable[..., Any], label: Int[ArrayLike, ""]
) -> ClassifierLogProb:
    r"""Bind a label into a noisy classifier: $(t, x) \mapsto \log p_t(y\mid x)$, the
    log-softmax of the logits at $y$, ready for
    [`classifier_guidance`][gpm_sde.scores.classifier_guidance]:

    ```python
    guided = classifier_guidance(score, classifier_log_prob(clf, y), gamma)
    ```

    **Arguments:**

    - `classifier`: logits `classifier(t, x) -> (K,)` on one point.
    - `label`: the class $y$.

    **Returns:** a [`ClassifierLogProb`][gpm_sde.nn.ClassifierLogProb].
    """
    return ClassifierLogProb(classifier, label)
