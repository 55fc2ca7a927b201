r"""Pieces shared by the class-conditional particle models (Score GAN, Discriminator Flow,
DiffFlow-GAN): the law of the labels the generator or the particles are given, and scores
evaluated on a labelled cloud, one label per particle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._checks import is_concrete
from ..flows import discriminator_field
from ..schedules import AbstractSchedule, Schedule, as_schedule
from ..scores import AbstractCloudScore, couples_particles, is_cloud_score
from ._common import as_labeled_sampler

LabelSampler = Callable[[PRNGKeyArray, int], Int[Array, " n"]]


def label_sampler(labels: Any, name: str = "labels") -> LabelSampler:
    """`(key, n) -> n int labels` from the law of the data's labels:

    - a 1-D integer array of the data's labels (drawn uniformly with replacement, so each
      class comes with its frequency in the data);
    - a law with `.sample_with_components(key, n)` (e.g. a `GaussianMixture`: the class is
      the mixture component, drawn with the mixture weights), as
      [`as_labeled_sampler`][gpm_sde.train.as_labeled_sampler] with `labels="components"`;
    - a callable `(key, n) -> labels`.
    """
    if callable(getattr(labels, "sample_with_components", None)):
        draw = as_labeled_sampler(labels, "components", name)
        return lambda key, n: jnp.asarray(draw(key, n)[1])
    if callable(labels):
        return lambda key, n: jnp.asarray(labels(key, n))
    try:
        lab = jnp.asarray(labels)
    except TypeError:
        lab = None
    if lab is None or not jnp.issubdtype(lab.dtype, jnp.integer) or lab.ndim != 1:
        raise TypeError(
            f"`{name}` must be a 1-D integer array of the data's class labels, a law with "
            f"`.sample_with_components(key, n)` (e.g. a GaussianMixture, class = component) or "
            f"a callable `(key, n) -> labels`, got {type(labels).__name__}"
            f"{'' if lab is None else f' of dtype {lab.dtype} and shape {lab.shape}'}; pass "
            f"e.g. `{name}=y.astype(int)`."
        )
    if lab.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one label, got an empty array.")
    if is_concrete(lab) and int(lab.min()) < 0:
        raise ValueError(f"`{name}` must be class indices >= 0, got a minimum of {int(lab.min())}.")
    return lambda key, n: lab[jr.randint(key, (n,), 0, lab.shape[0])]


def check_pointwise(name: str, score: Any) -> None:
    """Refuse a cloud score where a conditional pointwise score `score(t, x, y)` is needed."""
    if is_cloud_score(score) or couples_particles(score):
        raise TypeError(
            f"`{name}` is a cloud score, but with `labels` it must be a conditional pointwise "
            f"score `{name}(sigma, x, y)` on one point and its label (e.g. a "
            f"`ScoreMLP(..., num_classes=K)` parameterisation, or the exact score of the "
            f"class's law)."
        )


class LabeledCloudScore(AbstractCloudScore):
    r"""A conditional pointwise score evaluated on a labelled cloud, one label per particle:
    $(s(t, y_i, c_i))_{i=1}^N$. Per-point (it couples no particles)."""

    per_point = True
    score: Callable[..., Any]
    labels: Int[Array, " n"]

    def __call__(
        self, s: Float[ArrayLike, ""], y: Float[Array, " n *event"]
    ) -> Float[Array, " n *event"]:
        return jax.vmap(lambda x, c: self.score(s, x, c))(y, self.labels)


class ClassSmoothedCloudScore(AbstractCloudScore):
    r"""The score of each class's part of the cloud, smoothed at a scheduled noise level:

    $$\nabla\log(\hat\rho_{s\mid c_i} * k_{\sigma(s)})(y_i),\qquad
    \hat\rho_{s\mid c} = \frac{1}{N_c}\sum_{j:\,c_j = c}\delta_{y_j},$$

    i.e. [`SmoothedCloudScore`][gpm_sde.scores.SmoothedCloudScore] applied to the particles
    of the class $c_i$ of particle $i$ only: $\frac{1}{\sigma^2}(\sum_j w_{ij}y_j - y_i)$ with
    $w_{ij} = \operatorname{softmax}_j(-\|y_i - y_j\|^2/2\sigma^2)$ over $j$ with $c_j = c_i$
    (particle $i$ included). Dense, $O(N^2)$ memory.
    """

    sigma: AbstractSchedule
    labels: Int[Array, " n"]

    def __init__(self, sigma: Schedule, labels: Int[Array, " n"]):
        self.sigma = as_schedule(sigma)
        self.labels = labels

    def __call__(
        self, s: Float[ArrayLike, ""], y: Float[Array, " n *event"]
    ) -> Float[Array, " n *event"]:
        n = y.shape[0]
        flat = y.reshape(n, -1)
        h = jnp.asarray(self.sigma(s), y.dtype)
        sq = jnp.sum((flat[:, None, :] - flat[None, :, :]) ** 2, axis=-1)
        same = self.labels[:, None] == self.labels[None, :]
        logits = jnp.where(same, -sq / (2 * h**2), -jnp.inf)
        w = jax.nn.softmax(logits, axis=1)
        return ((w @ flat - flat) / h**2).reshape(y.shape).astype(y.dtype)


class BoundLabelModule(eqx.Module):
    """A conditional model with its label as the last argument bound: `f(*args) = model(*args,
    label)`; the generator `G(z, y)` and discriminator `D(s, x, y)` seen by one class."""

    model: Callable[..., Any]
    label: Any

    def __call__(self, *args: Any) -> Any:
        return self.model(*args, self.label)


class LabeledDiscriminatorField(eqx.Module):
    r"""The Discriminator-Flow field of each particle's own class,
    $v(s, x_i) = -\nabla_x c\big(D(s, x_i, c_i)\big)$: the field of
    [`discriminator_field`][gpm_sde.flows.discriminator_field] for the discriminator
    $D(s, \cdot, c_i)$ of the class $c_i$ of particle $i$."""

    discriminator: Callable[..., Any]
    kind: Literal["nonsaturating", "ipm", "hinge"] = eqx.field(static=True)
    low_on_data: bool = eqx.field(static=True)
    labels: Int[Array, " n"]

    def __call__(
        self, s: Float[ArrayLike, ""], y: Float[Array, " n *event"], args: Any = None
    ) -> Float[Array, " n *event"]:
        def one(x: Array, c: Array) -> Array:
            d = BoundLabelModule(self.discriminator, c)
            return discriminator_field(d, self.kind, low_on_data=self.low_on_data)(s, x[None])[0]

        return jax.vmap(one)(y, self.labels)


def check_particle_labels(labels: Any, n: int, name: str = "labels") -> Int[Array, " n"]:
    """`labels` as a 1-D integer array of one class per particle (`n` of them)."""
    try:
        lab = jnp.asarray(labels)
    except TypeError:
        lab = None
    if lab is None or not jnp.issubdtype(lab.dtype, jnp.integer) or lab.shape != (n,):
        what = "" if lab is None else f" of dtype {lab.dtype} and shape {lab.shape}"
        raise TypeError(
            f"`{name}` must be a 1-D integer array with one class per particle, shape ({n},), "
            f"got {type(labels).__name__}{what}; pass e.g. `{name}=jnp.full({n}, 0)`."
        )
    return lab
