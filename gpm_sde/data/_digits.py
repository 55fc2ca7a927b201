r"""scikit-learn's bundled 8×8 handwritten digits, scaled to $[-1, 1]$, with a fixed split.

The data set (Alpaydin & Kaynak 1998, the test part of the UCI "Optical Recognition of
Handwritten Digits" set) ships inside scikit-learn, so loading it needs no download: 1,797
grey-level images of $8 \times 8$ pixels with integer values in $\{0, \dots, 16\}$ and labels
$0, \dots, 9$ (between 174 and 183 images per class).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import check_int
from .._optional import require

TEST_FRACTION = 0.2
"""The fraction of each class put in the test split."""

DIGITS_SIZES = {"train": 1438, "test": 359}
"""The split sizes: per class $c$ with $n_c$ images, $\\operatorname{round}(0.2\\, n_c)$ go to
the test split (no ties: $0.2\\, n_c$ is never a half-integer), 359 in all, and the other 1,438
to the train split."""


@functools.cache
def _load() -> tuple[np.ndarray, np.ndarray]:
    load_digits = require("sklearn.datasets", "`gpm_sde.data.digits`").load_digits
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # pyright: ignore[reportAttributeAccessIssue]
    labels = np.asarray(bunch.target, dtype=np.int64)  # pyright: ignore[reportAttributeAccessIssue]
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@functools.cache
def _split_indices(seed: int) -> dict[str, np.ndarray]:
    _, labels = _load()
    rng = np.random.default_rng(seed)
    test = []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[: round(TEST_FRACTION * idx.size)])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(labels.size), test_idx)
    return {"train": train_idx, "test": test_idx}


def digits_split(seed: int = 0) -> dict[str, np.ndarray]:
    """The indices, into `digits("all")`, of the train and test images of the split of
    [`digits`][gpm_sde.data.digits] with this `seed`: `{"train": ..., "test": ...}`, each
    sorted (copies; modifying them changes nothing)."""
    _check_seed(seed)
    return {k: v.copy() for k, v in _split_indices(int(seed)).items()}


def _check_seed(seed) -> None:
    check_int("seed", seed, 0, "the split's seed", example=0)


def digits(split: str = "train", seed: int = 0) -> tuple[Float[Array, "n 1 8 8"], Int[Array, " n"]]:
    r"""The 8×8 handwritten digits of scikit-learn (`sklearn.datasets.load_digits`), as images
    in $[-1, 1]$ with their labels.

    Pixel values $v \in [0, 16]$ are mapped affinely to $x = v / 8 - 1 \in [-1, 1]$, the range
    of the data-prediction targets of the diffusion models and of a `tanh` generator. Images
    have one channel: shape `(n, 1, 8, 8)`.

    **The split** is stratified and deterministic: for each class, the class's indices are
    shuffled by `numpy.random.default_rng(seed)` (classes in the order 0, …, 9) and the first
    $\operatorname{round}(0.2\, n_c)$ go to the test split. With any seed the sizes are those
    of `DIGITS_SIZES`: 1,438 train and 359 test images, every class in both; the two splits
    are disjoint and cover the 1,797 images, and each is in the order of the original data.
    The same `seed` gives the same split on every call and every machine (NumPy's PCG64
    stream is stable across versions).

    **Arguments:**

    - `split`: `"train"`, `"test"`, or `"all"` (the 1,797 images in their original order).
    - `seed`: the seed of the split (ignored for `"all"`).

    **Returns:** `(images, labels)`: images `(n, 1, 8, 8)` in the default float dtype, labels
    `(n,)` int32 in $\{0, \dots, 9\}$.
    """
    # `split` is annotated `str`, not a `Literal`, so that this check, which names the
    # choices, runs before any runtime type checker.
    if split not in ("train", "test", "all"):
        raise ValueError(
            f'`split` must be "train", "test" or "all", got {split!r}; the fixed stratified '
            f"split holds {DIGITS_SIZES['train']} train and {DIGITS_SIZES['test']} test images."
        )
    _check_seed(seed)
    images, labels = _load()
    if split != "all":
        idx = _split_indices(int(seed))[split]
        images, labels = images[idx], labels[idx]
    x = images[:, None, :, :] / 8.0 - 1.0
    return jnp.asarray(x, dtype=float), jnp.asarray(labels, dtype=jnp.int32)
