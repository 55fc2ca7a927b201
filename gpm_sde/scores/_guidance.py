r"""Guidance as score combinators: a label bound into a conditional score, classifier
guidance and classifier-free guidance, and the exact component log-posterior of mixture data.

In the particle view guidance is one more score term in the drift,
$\nabla_x\log p_t(x\mid y) = \nabla_x\log p_t(x) + \nabla_x\log p_t(y\mid x)$; each combinator
here returns a pointwise score `(t, x) -> ...`, so every sampler and SDE transform accepts it
unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from ..distributions import GaussianMixture
from ..processes import AbstractLinearProcess


class Conditioned(eqx.Module):
    r"""A conditional score with its label bound: $(t, x) \mapsto s(t, x, y)$.

    **Arguments:**

    - `score`: a conditional pointwise score `score(t, x, y)`.
    - `label`: the label (or conditioning vector) $y$ to bind.
    """

    score: Callable[..., Any]
    label: Any

    def __call__(
        self, t: Float[ArrayLike, ""], x: Float[Array, "*event"]
    ) -> Float[Array, "*event"]:
        return self.score(t, x, self.label)


class ClassifierGuidedScore(eqx.Module):
    r"""Classifier guidance (Dhariwal & Nichol 2021, sec. 4):

    $$\tilde s(t, x) = s(t, x) + \gamma\,\nabla_x \log p_t(y\mid x),$$

    the gradient taken by `jax.grad` of the noisy classifier's log-probability of the bound
    label. At $\gamma = 1$ with the exact $s = \nabla\log p_t$ and the exact
    $\log p_t(y\mid x)$ this is the exact conditional score $\nabla_x\log p_t(x\mid y)$ (Bayes).

    **Arguments:**

    - `score`: the unconditional pointwise score `score(t, x)`.
    - `log_classifier`: `log_classifier(t, x) -> scalar`, $\log p_t(y\mid x)$ for the target
      label (bind the label first, e.g. with [`Conditioned`][gpm_sde.scores.Conditioned]).
    - `gamma`: the guidance scale $\gamma$.
    """

    score: Callable[..., Any]
    log_classifier: Callable[..., Any]
    gamma: Float[ArrayLike, ""]

    def __call__(
        self, t: Float[ArrayLike, ""], x: Float[Array, "*event"]
    ) -> Float[Array, "*event"]:
        grad = jax.grad(lambda z: self.log_classifier(t, z))(x)
        return self.score(t, x) + self.gamma * grad


class ClassifierFreeGuidedScore(eqx.Module):
    r"""Classifier-free guidance (Ho & Salimans 2022, eq. 6, written for scores):

    $$\tilde s(t, x) = (1 + w)\,s(t, x\mid y) - w\,s(t, x).$$

    $w = 0$ is the conditional score; $w = -1$ the unconditional one. Since
    $s(\cdot\mid y) - s = \nabla\log p_t(y\mid x)$, this equals classifier guidance with
    $\gamma = 1 + w$ on the exact classifier.

    **Arguments:**

    - `cond_score`: the conditional pointwise score with its label bound, `cond_score(t, x)`.
    - `uncond_score`: the unconditional pointwise score `uncond_score(t, x)`.
    - `w`: the guidance weight $w$.
    """

    cond_score: Callable[..., Any]
    uncond_score: Callable[..., Any]
    w: Float[ArrayLike, ""]

    def __call__(
        self, t: Float[ArrayLike, ""], x: Float[Array, "*event"]
    ) -> Float[Array, "*event"]:
        return (1.0 + self.w) * self.cond_score(t, x) - self.w * self.uncond_score(t, x)


class MixtureComponentLogPosterior(eqx.Module):
    r"""The exact noisy classifier of mixture data, class = component $k$:

    $$\log p_t(y = k\mid x) = \log w_k + \log\mathcal{N}\big(x;\alpha\mu_k, \alpha^2\Sigma_k
    + \sigma^2 I\big) - \log p_t(x),$$

    the log-responsibility of component $k$ under the exact marginal $p_t$. Callable as
    `fn(t, x)` (a scalar); pass it as `log_classifier` to
    [`classifier_guidance`][gpm_sde.scores.classifier_guidance].

    **Arguments:**

    - `process`: the forward process.
    - `law`: the data law at $t = 0$.
    - `component`: the class $k$.
    """

    process: AbstractLinearProcess
    law: GaussianMixture
    component: Int[ArrayLike, ""]

    def __call__(self, t: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, ""]:
        marginal = self.process.marginal(self.law, t)
        return jnp.log(marginal.responsibilities(x)[self.component])


def bind_label(score: Callable[..., Any], label: Any) -> Conditioned:
    r"""Bind a label into a conditional score: $(t, x) \mapsto s(t, x, y)$.

    **Arguments:**

    - `score`: a conditional pointwise score `score(t, x, y)`.
    - `label`: the label $y$.

    **Returns:** a pointwise score `(t, x)`, accepted by every sampler and SDE transform.
    """
    return Conditioned(score, label)


def classifier_guidance(
    score: Callable[..., Any], log_classifier: Callable[..., Any], gamma: Float[ArrayLike, ""]
) -> ClassifierGuidedScore:
    r"""The classifier-guided score $s(t, x) + \gamma\nabla_x\log p_t(y\mid x)$
    (Dhariwal & Nichol 2021, sec. 4).

    **Arguments:**

    - `score`: the unconditional pointwise score `score(t, x)`.
    - `log_classifier`: `log_classifier(t, x) -> scalar`, $\log p_t(y\mid x)$ of the target label.
    - `gamma`: the guidance scale $\gamma \ge 0$.

    **Returns:** a [`ClassifierGuidedScore`][gpm_sde.scores.ClassifierGuidedScore].
    """
    return ClassifierGuidedScore(score, log_classifier, gamma)


def classifier_free_guidance(
    cond_score: Callable[..., Any], uncond_score: Callable[..., Any], w: Float[ArrayLike, ""]
) -> ClassifierFreeGuidedScore:
    r"""The classifier-free guided score $(1 + w)s(t, x\mid y) - w\,s(t, x)$
    (Ho & Salimans 2022, eq. 6).

    **Arguments:**

    - `cond_score`: the conditional score with its label bound, `cond_score(t, x)`.
    - `uncond_score`: the unconditional score `uncond_score(t, x)`.
    - `w`: the guidance weight $w$.

    **Returns:** a [`ClassifierFreeGuidedScore`][gpm_sde.scores.ClassifierFreeGuidedScore].
    """
    return ClassifierFreeGuidedScore(cond_score, uncond_score, w)
