r"""The digits Fréchet distance: the FID of the 8×8 digits, and the class coverage of a sample.

The Fréchet Inception Distance (Heusel et al. 2017, §"Fréchet Inception Distance", eq. 6)
compares two image sets through the Gaussian fits of their features in a fixed classifier:

$$\mathrm{FID}(x, y) = \|m_x - m_y\|^2 + \operatorname{tr}\Big(\Sigma_x + \Sigma_y
- 2\big(\Sigma_y^{1/2}\Sigma_x\Sigma_y^{1/2}\big)^{1/2}\Big),$$

with $(m, \Sigma)$ the mean and covariance of the penultimate activations of Inception-v3.
Inception does not see $8 \times 8$ images, so this module ships its **digits analogue**: a
small CNN, [`DigitsClassifier`][gpm_sde.metrics.DigitsClassifier], trained on the train split
of `gpm_sde.data.digits` only (by `benchmarks/train_digits_classifier.py`), whose 64-dimensional
penultimate layer plays the role of Inception's pool features. The *digits-FD* is the
Fréchet distance of [`frechet_distance`][gpm_sde.metrics.frechet_distance] between the
features of two sets of images.

The classifier's predictions also give the **class coverage** of a sample: the fraction of it
recognised as each digit, which shows a generator that drops classes (mode collapse) even when
its samples look sharp.

The checkpoint `digits_classifier.eqx` lies inside this package. This module imports nothing
from `gpm_sde.nn` or `gpm_sde.data` (the metrics layer stays at the bottom), so the reference
images are passed explicitly: `digits_fd(samples, gpm_sde.data.digits("test")[0])`.
"""

from __future__ import annotations

import functools
import importlib.resources
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._checks import IntLike, check_float_array, check_int, is_concrete
from ._frechet_distance import frechet_distance

CHECKPOINT_NAME = "digits_classifier.eqx"
"""The file name of the shipped checkpoint, inside the `gpm_sde.metrics` package."""

FEATURE_DIM = 64
"""The dimension of the features (the penultimate layer) of the digits classifier."""

_MAX_ABS = 10.0
_TRAIN_HINT = "regenerate it with `python benchmarks/train_digits_classifier.py`"


class DigitsClassifier(eqx.Module):
    r"""A small CNN for the $8 \times 8$ digits, on **one** image `(1, 8, 8)` in $[-1, 1]$.

    Layers: $3 \times 3$ convolution $1 \to 16$ channels, SiLU, $3 \times 3$ convolution
    $16 \to 32$, SiLU, $2 \times 2$ average pooling to $32 \times 4 \times 4$, a linear map to
    the 64 **features** with SiLU, and a linear map to the 10 logits. About 38,000 float32
    parameters.

    Inputs of any floating dtype are cast to float32 (the parameters' dtype); outputs are
    float32. Vmap over a batch, or use [`digits_features`][gpm_sde.metrics.digits_features]
    and [`digits_predict`][gpm_sde.metrics.digits_predict].
    """

    conv1: eqx.nn.Conv2d
    conv2: eqx.nn.Conv2d
    hidden: eqx.nn.Linear
    head: eqx.nn.Linear

    def __init__(self, *, key: PRNGKeyArray):
        """**Arguments:** `key`: the PRNG key of the initial parameters."""
        k1, k2, k3, k4 = jax.random.split(key, 4)
        f32 = jnp.float32
        self.conv1 = eqx.nn.Conv2d(1, 16, 3, padding=1, key=k1, dtype=f32)
        self.conv2 = eqx.nn.Conv2d(16, 32, 3, padding=1, key=k2, dtype=f32)
        self.hidden = eqx.nn.Linear(32 * 4 * 4, FEATURE_DIM, key=k3, dtype=f32)
        self.head = eqx.nn.Linear(FEATURE_DIM, 10, key=k4, dtype=f32)

    def features(self, x: Float[Array, "1 8 8"]) -> Float[Array, " 64"]:
        """The 64 penultimate activations (the digits analogue of Inception's pool features)."""
        h = jax.nn.silu(self.conv1(x.astype(jnp.float32)))
        h = jax.nn.silu(self.conv2(h))
        h = h.reshape(32, 4, 2, 4, 2).mean(axis=(2, 4))
        return jax.nn.silu(self.hidden(h.reshape(-1)))

    def __call__(self, x: Float[Array, "1 8 8"]) -> Float[Array, " 10"]:
        """The 10 logits of the classes $0, \\dots, 9$."""
        return self.head(self.features(x))


def _skeleton() -> DigitsClassifier:
    # Shapes and dtypes only: nothing is initialised.
    return eqx.filter_eval_shape(DigitsClassifier, key=jax.random.key(0))


def _load(path: str | os.PathLike[str] | None) -> DigitsClassifier:
    resource = importlib.resources.files("gpm_sde.metrics") / CHECKPOINT_NAME
    where = str(resource) if path is None else os.fspath(path)
    try:
        with resource.open("rb") if path is None else open(path, "rb") as f:
            model = eqx.tree_deserialise_leaves(f, _skeleton())
            trailing = f.read(1)
    except Exception as err:
        raise RuntimeError(
            f"Could not load the digits classifier from {where!r} ({type(err).__name__}: "
            f"{err}); the file is missing or is not a checkpoint of the current "
            f"`DigitsClassifier` architecture: {_TRAIN_HINT}."
        ) from err
    if trailing:
        raise RuntimeError(
            f"The digits classifier checkpoint {where!r} is longer than the parameters of the "
            f"current `DigitsClassifier` architecture, so it belongs to another architecture: "
            f"{_TRAIN_HINT}."
        )
    return model


@functools.cache
def _load_default() -> DigitsClassifier:
    return _load(None)


def load_digits_classifier(path: str | os.PathLike[str] | None = None) -> DigitsClassifier:
    r"""The trained [`DigitsClassifier`][gpm_sde.metrics.DigitsClassifier] behind the
    digits-FD.

    **Arguments:**

    - `path`: a checkpoint written by `equinox.tree_serialise_leaves`; `None` (default) loads
      the one shipped in the package, `gpm_sde/metrics/digits_classifier.eqx`, once per
      process (cached).

    **Returns:** the classifier.

    **Raises:** `RuntimeError`, naming the file, if it is missing, unreadable or was written
    for another architecture.
    """
    return _load_default() if path is None else _load(path)


def _classifier(classifier: DigitsClassifier | None) -> DigitsClassifier:
    if classifier is None:
        return load_digits_classifier()
    if not isinstance(classifier, DigitsClassifier):
        raise TypeError(
            f"`classifier` must be a `DigitsClassifier` or None (the shipped one), got "
            f"{type(classifier).__name__}; load one with `load_digits_classifier()`."
        )
    return classifier


def _check_images(name: str, x) -> Array:
    check_float_array(name, x)
    x = jnp.asarray(x)
    if x.ndim != 4 or x.shape[1:] != (1, 8, 8):
        raise ValueError(
            f"`{name}` must be a batch of 8×8 one-channel images of shape (n, 1, 8, 8), got "
            f"shape {x.shape}; for flat images of shape (n, 64) pass "
            f"`{name}.reshape(-1, 1, 8, 8)`."
        )
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one image, got shape {x.shape}.")
    if is_concrete(x):
        arr = np.asarray(jax.device_get(x))
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"`{name}` must be finite, but {int(np.sum(~np.isfinite(arr)))} of its values "
                f"are NaN or inf; pass finite images."
            )
        top = float(np.max(np.abs(arr)))
        if top > _MAX_ABS:
            raise ValueError(
                f"`{name}` must hold images in [-1, 1], the range of `gpm_sde.data.digits` on "
                f"which the classifier was trained, but max |{name}| = {top:.4g} > {_MAX_ABS}; "
                f"map pixel values v in [0, 16] with `v / 8 - 1`, or undo your own scaling."
            )
    return x


def _check_batch_size(batch_size) -> int:
    return check_int("batch_size", batch_size, 1, "images per forward pass", example=512)


@eqx.filter_jit
def _batched(classifier: DigitsClassifier, x: Array, logits: bool) -> Array:
    fn = classifier if logits else classifier.features
    return jax.vmap(fn)(x)


def _apply(classifier: DigitsClassifier, x: Array, batch_size: int, logits: bool) -> Array:
    # Fixed-size chunks (the last one padded) so that one compilation serves every batch.
    n = x.shape[0]
    size = min(batch_size, n)
    pad = -n % size
    xp = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    outs = [_batched(classifier, xp[i : i + size], logits) for i in range(0, n + pad, size)]
    return jnp.concatenate(outs)[:n]


# The image arguments are annotated loosely (`ArrayLike`) so that the checks, which name the
# argument and the fix, run before any runtime type checker; the docstrings give the shapes.


def digits_features(
    x: ArrayLike,
    *,
    classifier: DigitsClassifier | None = None,
    batch_size: IntLike = 512,
) -> Float[Array, "n 64"]:
    r"""The 64 penultimate activations of the digits classifier for each image: the features
    on which [`digits_fd`][gpm_sde.metrics.digits_fd] compares image sets (the digits
    analogue of Inception's pool features in the FID, Heusel et al. 2017).

    **Arguments:**

    - `x`: images `(n, 1, 8, 8)` in $[-1, 1]$, as `gpm_sde.data.digits` returns them (flat
      images `(n, 64)`: pass `x.reshape(-1, 1, 8, 8)`), floating, finite, $n \ge 1$. Values
      beyond $\pm 10$ are refused: the classifier never saw them.
    - `classifier`: a [`DigitsClassifier`][gpm_sde.metrics.DigitsClassifier]; `None` (default)
      uses the shipped one, [`load_digits_classifier()`][gpm_sde.metrics.load_digits_classifier].
    - `batch_size`: images per jitted call.

    **Returns:** the features `(n, 64)`, computed in float32 and returned in the dtype of `x`.
    """
    x = _check_images("x", x)
    size = _check_batch_size(batch_size)
    return _apply(_classifier(classifier), x, size, logits=False).astype(x.dtype)


def digits_predict(
    x: ArrayLike,
    *,
    classifier: DigitsClassifier | None = None,
    batch_size: IntLike = 512,
) -> Int[Array, " n"]:
    r"""The digit recognised in each image, $\hat c_i = \arg\max_c \ell_c(x_i)$ over the
    classifier's logits $\ell$.

    **Arguments:** as [`digits_features`][gpm_sde.metrics.digits_features].

    **Returns:** the labels `(n,)`, int32 in $\{0, \dots, 9\}$.
    """
    x = _check_images("x", x)
    size = _check_batch_size(batch_size)
    logits = _apply(_classifier(classifier), x, size, logits=True)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def digits_class_coverage(
    x: ArrayLike,
    *,
    classifier: DigitsClassifier | None = None,
) -> Float[Array, " 10"]:
    r"""The fraction of the images recognised as each digit,
    $\pi_c = \frac{1}{n}\sum_{i=1}^n \mathbf{1}[\hat c_i = c]$ with $\hat c_i$ of
    [`digits_predict`][gpm_sde.metrics.digits_predict].

    The digits data are close to balanced (between 174 and 183 images per class, so
    $\pi_c \approx 0.1$); a generator that drops or favours digits shows it here.

    **Arguments:** `x` and `classifier` as in [`digits_features`][gpm_sde.metrics.digits_features].

    **Returns:** $(\pi_0, \dots, \pi_9)$, summing to 1, in the default float dtype.
    """
    labels = digits_predict(x, classifier=classifier)
    counts = jnp.bincount(labels, length=10)
    return counts.astype(float) / labels.shape[0]


def digits_fd(
    x: ArrayLike,
    y: ArrayLike,
    *,
    classifier: DigitsClassifier | None = None,
) -> Float[Array, ""]:
    r"""The digits-FD: the Fréchet distance between the classifier features of two image sets,
    the digits analogue of the FID (Heusel et al. 2017, §"Fréchet Inception Distance", eq. 6):

    $$\mathrm{FD}(x, y) = \|m_x - m_y\|^2 + \operatorname{tr}\Big(\Sigma_x + \Sigma_y
    - 2\big(\Sigma_y^{1/2}\Sigma_x\Sigma_y^{1/2}\big)^{1/2}\Big),$$

    with $(m, \Sigma)$ the sample mean and unbiased covariance of
    [`digits_features`][gpm_sde.metrics.digits_features].

    The reference set is explicit; to score generated samples against held-out data, use the
    test split: `digits_fd(samples, gpm_sde.data.digits("test")[0])`. Like the FID, the
    digits-FD is squared and biased upwards at finite sample size (see
    [`frechet_distance`][gpm_sde.metrics.frechet_distance]): compare values only at equal
    sample sizes. On the fixed split, train (1,438 images) against test (359) is the floor
    that a perfect generator would reach at those sizes.

    **Arguments:**

    - `x`, `y`: images `(n, 1, 8, 8)` and `(m, 1, 8, 8)` in $[-1, 1]$, $n, m \ge 2$ (checked
      as in [`digits_features`][gpm_sde.metrics.digits_features]).
    - `classifier`: as in [`digits_features`][gpm_sde.metrics.digits_features].

    **Returns:** the scalar digits-FD, computed in the common dtype of `x` and `y`.
    """
    x = _check_images("x", x)
    y = _check_images("y", y)
    for name, arr in (("x", x), ("y", y)):
        if arr.shape[0] < 2:
            raise ValueError(
                f"`{name}` must hold at least 2 images (a covariance needs two), got shape "
                f"{arr.shape}."
            )
    model = _classifier(classifier)
    dtype = jnp.result_type(x, y)
    fx = digits_features(x, classifier=model).astype(dtype)
    fy = digits_features(y, classifier=model).astype(dtype)
    return frechet_distance(fx, fy)
