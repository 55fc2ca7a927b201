"""Train the digits classifier behind `gpm_sde.metrics.digits_fd` and write its checkpoint.

Trains [`DigitsClassifier`][gpm_sde.metrics.DigitsClassifier] on the **train split** of
`gpm_sde.data.digits` only (1,438 images; the 359 test images are never seen), with Adam and
random ±1-pixel shifts, from a fixed seed, then prints the train and test accuracies and writes
`gpm_sde/metrics/digits_classifier.eqx` (float32 parameters).

Run from the repository root (about a minute on two CPU cores):

    python benchmarks/train_digits_classifier.py [--steps 3000] [--out PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from gpm_sde.data import digits
from gpm_sde.metrics import DigitsClassifier, digits_predict

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "gpm_sde" / "metrics" / "digits_classifier.eqx"


def shift(key: jax.Array, image: jax.Array) -> jax.Array:
    """Shift one `(1, 8, 8)` image by -1, 0 or +1 pixel along each axis, filling with -1
    (the background)."""
    padded = jnp.pad(image, ((0, 0), (1, 1), (1, 1)), constant_values=-1.0)
    di, dj = jax.random.randint(key, (2,), 0, 3)
    return jax.lax.dynamic_slice(padded, (0, di, dj), (1, 8, 8))


def loss_fn(model: DigitsClassifier, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = jax.vmap(model)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    x_train, y_train = digits("train")
    x_test, y_test = digits("test")
    x_train = x_train.astype(jnp.float32)
    n = x_train.shape[0]

    key = jax.random.key(args.seed)
    key, init_key = jax.random.split(key)
    model = DigitsClassifier(key=init_key)
    schedule = optax.cosine_decay_schedule(args.lr, args.steps, alpha=0.05)
    optim = optax.adamw(schedule, weight_decay=1e-4)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, opt_state, key):
        k_idx, k_shift = jax.random.split(key)
        idx = jax.random.randint(k_idx, (args.batch_size,), 0, n)
        xb = jax.vmap(shift)(jax.random.split(k_shift, args.batch_size), x_train[idx])
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, xb, y_train[idx])
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optim.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, loss

    start = time.perf_counter()
    for i in range(args.steps):
        key, sub = jax.random.split(key)
        model, opt_state, loss = step(model, opt_state, sub)
        if (i + 1) % 500 == 0:
            print(f"step {i + 1:5d}  loss {float(loss):.4f}  ({time.perf_counter() - start:.1f} s)")

    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        acc = float(jnp.mean(digits_predict(x, classifier=model) == y))
        print(f"{name} accuracy: {acc:.4f} ({x.shape[0]} images)")

    eqx.tree_serialise_leaves(args.out, model)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
