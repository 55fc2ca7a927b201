"""A diffusion model of scikit-learn's 8×8 handwritten digits, on the CPU, judged by the
digits-FD (the Fréchet distance of the features of the small classifier shipped with
`gpm_sde.metrics`, the role the FID plays for larger images).

1. `fit_score` trains an ε-parameterised U-Net (`nn.UNet8`) on the VP process by denoising
   score matching, keeping an exponential moving average of the weights;
2. `samplers.reverse_sde_sample` draws images with the reverse SDE;
3. `metrics.digits_fd` compares them with the test split, next to the train-versus-test
   digits-FD (the floor a perfect model reaches at these sample sizes).

    python examples/digits_diffusion.py                  # tens of minutes on a CPU
    python examples/digits_diffusion.py --fast           # a smoke test
    python examples/digits_diffusion.py --plot digits.png
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import jax.random as jr
import numpy as np

import gpm_sde
from gpm_sde import data, metrics, nn, samplers, train


def main() -> None:
    parser = argparse.ArgumentParser(description="A diffusion model of the 8×8 digits.")
    parser.add_argument("--fast", action="store_true", help="a tiny U-Net, a few steps")
    parser.add_argument("--plot", metavar="PNG", help="save a grid of 64 samples here")
    args = parser.parse_args()
    if args.fast:
        steps, channels, sample_steps, n = 10, (4, 4, 4), 10, 64
    else:
        steps, channels, sample_steps, n = 4000, (16, 32, 32), 300, data.DIGITS_SIZES["train"]

    train_x, _ = data.digits("train")  # (1438, 1, 8, 8) in [-1, 1]
    test_x, _ = data.digits("test")  # (359, 1, 8, 8)
    process = gpm_sde.vp()
    key = jr.key(0)

    # 1. The score model: s(t, x) = -ε̂(t, x) / σ(t), ε̂ a small U-Net.
    model = nn.EpsilonParam(nn.UNet8(key=jr.fold_in(key, 0), channels=channels), process.sigma)
    model, history = train.fit_score(
        model,
        process,
        train_x,
        jr.fold_in(key, 1),
        steps=steps,
        batch_size=128,
        ema=0.999 if not args.fast else None,
        loss_options={"t_min": 1e-3},
        progress=not args.fast,
    )

    # 2. Samples: the reverse SDE from the prior N(0, I), stopped at t = 1e-3.
    out = samplers.reverse_sde_sample(
        process, model, jr.fold_in(key, 2), n, (1, 8, 8), steps=sample_steps
    )
    x = jnp.clip(out.x, -1.0, 1.0)

    # 3. The digits-FD to the test split, and the data's own train-versus-test value.
    fd = float(metrics.digits_fd(x, test_x))
    floor = float(metrics.digits_fd(train_x[:n], test_x))
    coverage = np.asarray(metrics.digits_class_coverage(x))
    print(f"score model: {steps} steps, final loss {float(history['loss'][-1]):.4f}")
    print(f"digits-FD(samples, test) = {fd:.2f}; digits-FD(train, test) = {floor:.2f}")
    print("fraction of samples recognised as each digit:", np.round(coverage, 2))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(8, 8, figsize=(6, 6))
        for ax, img in zip(axes.ravel(), np.asarray(x)[:64, 0], strict=False):
            ax.imshow(img, cmap="gray_r", vmin=-1, vmax=1)
            ax.axis("off")
        fig.savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
