r"""Class-conditional digits with classifier-free guidance (Ho & Salimans 2022): an
EDM-preconditioned, label-conditioned U-Net trained with label dropout, sampled per class with
the guided score $(1 + w)\,s(t, x\mid y) - w\,s(t, x)$, judged by the shipped digits
classifier's accuracy on the generated digits and by the digits-FD per class and overall.

    python benchmarks/conditional_digits.py                 # full settings
    python benchmarks/conditional_digits.py --fast          # tiny settings (a smoke test)
    python benchmarks/conditional_digits.py --steps 1500 --w 0 0.5 1 2 4
    python benchmarks/conditional_digits.py --gan           # the conditional GAN row (3,000 steps)

Training: `benchmarks/digits.py`'s EDM U-Net (channels 16, 32, 32, $\sigma_d = 0.6$,
$\ln\sigma\sim\mathcal{N}(-1, 1.2^2)$), class-conditional (`nn.UNet8(num_classes=10)`: a
learned label embedding added to the time embedding, the null label 10 for the unconditional
score), trained by `train.fit_score(labels=..., label_dropout=0.1)`: the EDM-weighted
denoiser loss (Karras et al. 2022) with the labels dropped to the null label with probability
0.1, batch 128, Adam 1e-3, the bias-corrected EMA 0.999. The trained network is cached under
`--cache` (default `/tmp`) with `eqx.tree_serialise_leaves`.

Sampling: DPM-Solver++(2M) (`samplers.dpm_solver_pp_2m`) on the EDM process, `--sample-steps`
steps (20; two network evaluations per step under guidance), as many images of class $k$ as
the training split has (1,438 in all), for each guidance weight $w$; $w = -1$ is the
unconditional score of the same network (the null label). Per class: the classifier's
accuracy (the fraction classified as $k$) and the digits-FD to the test split's class $k$,
next to the train-versus-test digits-FD of that class (the FD of ~36 test images is strongly
biased; compare with that reference, not with the overall FD). Overall: the digits-FD of all
classes together to the whole test split. Writes `conditional_digits.json`,
`conditional_digits.md` and `conditional_digits.png` under `--out` (default
`reports/results`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from digits import CHANNELS, EDM_NOISE, SIGMA_DATA  # benchmarks/digits.py

import gpm_sde
from gpm_sde import data, metrics, nn, samplers, scores, train
from gpm_sde.cli.figures import image_grid

CLASSES = 10
NULL = CLASSES  # the null label of classifier-free training
LABEL_DROPOUT = 0.1


def model_init(key: jax.Array) -> nn.EDMDenoiser:
    """The Digits section's EDM U-Net, class-conditional: `nn.UNet8(num_classes=10)` adds a
    learned label embedding to its time embedding (null label 10)."""
    unet = nn.UNet8(key=key, channels=CHANNELS, fourier_scale=1.0, num_classes=CLASSES)
    return nn.EDMDenoiser(unet, sigma_data=SIGMA_DATA)


def train_conditional(
    key: jax.Array, steps: int, train_x: jax.Array, train_y: jax.Array
) -> nn.EDMDenoiser:
    """`train.fit_score` with the labels, dropped to the null label with probability 0.1:
    the EDM-weighted denoiser loss, Adam 1e-3, batch 128, the bias-corrected EMA 0.999 (the
    settings of the Digits section's data score)."""
    model, _ = train.fit_score(
        model_init(jr.fold_in(key, 0)),
        gpm_sde.edm(),
        train_x,
        jr.fold_in(key, 1),
        labels=train_y,
        label_dropout=LABEL_DROPOUT,
        steps=steps,
        batch_size=128,
        weighting="edm",
        ema=0.999,
        loss_options={"sigma_data": SIGMA_DATA, **EDM_NOISE},
        progress=False,
    )
    return model


def trained(key, steps, train_x, train_y, cache: Path, seed: int) -> tuple[Any, float]:
    path = cache / f"gpm_sde_conditional_digits_v3_seed{seed}_steps{steps}.eqx"
    if path.exists():
        print(f"loading the trained model from {path}", flush=True)
        return eqx.tree_deserialise_leaves(path, model_init(jr.fold_in(key, 0))), 0.0
    start = time.perf_counter()
    model = train_conditional(key, steps, train_x, train_y)
    seconds = time.perf_counter() - start
    cache.mkdir(parents=True, exist_ok=True)
    eqx.tree_serialise_leaves(path, model)
    print(f"trained {steps} steps in {seconds:.0f}s, saved to {path}", flush=True)
    return model, seconds


GAN_LATENT = 32


def conditional_gan(key: jax.Array, steps: int, train_x: jax.Array, train_y: jax.Array):
    """A conditional DCGAN (Mirza & Osindero 2014) with a projection discriminator (Miyato &
    Koyama 2018): `nn.ConvGenerator8(num_classes=10)` $G(z, y)$ and
    `nn.ConvDiscriminator8(num_classes=10, conditioning="projection")` $D(x, y)$, trained by
    `train.train_gan(labels=...)` (non-saturating loss, R1 with $\\gamma = 1$, Adam 2e-4 with
    $\beta_1 = 0.5$, batch 128, bias-corrected EMA 0.999 of the generator)."""
    g = nn.ConvGenerator8(GAN_LATENT, key=jr.fold_in(key, 10), num_classes=CLASSES)
    d = nn.ConvDiscriminator8(
        key=jr.fold_in(key, 11), num_classes=CLASSES, conditioning="projection"
    )
    g, _, _ = train.train_gan(
        g,
        d,
        train_x,
        jr.fold_in(key, 12),
        labels=train_y,
        steps=steps,
        penalty="r1",
        penalty_weight=1.0,
        batch_size=128,
        ema=0.999,
        progress=False,
    )
    return g


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="training steps (1500)")
    parser.add_argument("--sample-steps", type=int, default=None, help="2M steps (20)")
    parser.add_argument("--w", type=float, nargs="+", default=None)
    parser.add_argument("--cache", type=Path, default=Path("/tmp"))
    parser.add_argument("--out", type=Path, default=Path("reports/results"))
    parser.add_argument(
        "--gan", action="store_true", help="the conditional GAN row only (--steps: its steps)"
    )
    args = parser.parse_args(argv)
    if args.gan:
        return _gan_row(args)
    steps = args.steps or (100 if args.fast else 1500)
    sample_steps = args.sample_steps or (8 if args.fast else 20)
    weights = args.w or ((0.0, 2.0) if args.fast else (0.0, 0.5, 1.0, 2.0, 4.0))

    train_x, train_y = data.digits("train")
    test_x, test_y = data.digits("test")
    counts = np.bincount(np.asarray(train_y), minlength=CLASSES)
    per_class = int(counts.max())  # one sampler shape for every class (no recompilation)
    key = jr.key(args.seed)
    model, train_seconds = trained(key, steps, train_x, train_y, args.cache, args.seed)
    process = gpm_sde.edm()
    sample_key = jr.fold_in(key, 2)
    uncond = scores.bind_label(model, NULL)

    def fd(x: jax.Array, y: jax.Array) -> float:
        return float(metrics.digits_fd(x, y)) if bool(jnp.all(jnp.isfinite(x))) else np.nan

    reference = fd(train_x, test_x)
    class_reference = [fd(train_x[train_y == k], test_x[test_y == k]) for k in range(CLASSES)]
    print(f"train-vs-test digits-FD {reference:.2f}", flush=True)

    start = time.perf_counter()
    x = samplers.dpm_solver_pp_2m(
        process, uncond, sample_key, train_x.shape[0], (1, 8, 8), steps=sample_steps
    ).x
    x = jnp.clip(jax.block_until_ready(x), -1.0, 1.0)
    uncond_fd = fd(x, test_x)
    print(f"w = -1 (null label): digits-FD {uncond_fd:.2f} ({time.perf_counter() - start:.0f}s)")
    rows, images = [], {}
    for w in weights:
        start = time.perf_counter()
        xs, acc, cfd = [], [], []
        for k in range(CLASSES):
            score = scores.classifier_free_guidance(
                scores.bind_label(model, jnp.asarray(k)), uncond, jnp.asarray(w)
            )
            xk = samplers.dpm_solver_pp_2m(
                process,
                score,
                jr.fold_in(sample_key, k),
                per_class,
                (1, 8, 8),
                steps=sample_steps,
            ).x
            xk = jnp.clip(jax.block_until_ready(xk), -1.0, 1.0)[: counts[k]]
            xs.append(xk)
            acc.append(float(jnp.mean(metrics.digits_predict(xk) == k)))
            cfd.append(fd(xk, test_x[test_y == k]))
        x = jnp.concatenate(xs)
        overall = fd(x, test_x)
        seconds = time.perf_counter() - start
        rows.append(
            {"w": w, "accuracy": acc, "class_fd": cfd, "overall_fd": overall, "seconds": seconds}
        )
        images[w] = [np.asarray(xk) for xk in xs]
        print(
            f"w = {w:4.1f}: accuracy mean {np.mean(acc):.3f} min {np.min(acc):.3f}  "
            f"digits-FD {overall:.2f}  class FD mean {np.mean(cfd):.2f}  ({seconds:.0f}s)",
            flush=True,
        )

    summary = {
        "steps": steps,
        "sample_steps": sample_steps,
        "train_seconds": train_seconds,
        "reference_fd": reference,
        "class_reference_fd": class_reference,
        "uncond_fd": uncond_fd,
        "rows": rows,
        "fast": args.fast,
    }
    lines = [
        f"Train-versus-test digits-FD {reference:.2f}; the same network's unconditional score "
        f"(w = -1, null label): digits-FD {uncond_fd:.2f}.",
        "",
        "| w | accuracy (mean) | accuracy (min class) | digits-FD (all) | "
        "class digits-FD (mean) | sampling (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['w']:g} | {np.mean(r['accuracy']):.3f} | {np.min(r['accuracy']):.3f} | "
            f"{r['overall_fd']:.2f} | {np.mean(r['class_fd']):.2f} | {r['seconds']:.0f} |"
        )
    lines += [
        "",
        "Per class: accuracy / digits-FD to the test split's class (train-vs-test class "
        "digits-FD in the header)",
        "",
        "| w | " + " | ".join(f"{k} ({class_reference[k]:.1f})" for k in range(CLASSES)) + " |",
        "|---|" + "---|" * CLASSES,
    ]
    for r in rows:
        cells = " | ".join(
            f"{a:.2f} / {f:.1f}" for a, f in zip(r["accuracy"], r["class_fd"], strict=True)
        )
        lines.append(f"| {r['w']:g} | {cells} |")
    print("\n".join(lines), flush=True)
    from _common import write_report  # benchmarks/_common.py

    write_report(args.out, "conditional_digits", summary, lines)
    _figure(args.out / "conditional_digits.png", images)
    return 0


def _gan_row(args: argparse.Namespace) -> int:
    """Train the conditional GAN, generate each class as many images as the train split
    has, and print its accuracy and digits-FD row."""
    steps = args.steps or (100 if args.fast else 3000)
    train_x, train_y = data.digits("train")
    test_x, test_y = data.digits("test")
    counts = np.bincount(np.asarray(train_y), minlength=CLASSES)
    key = jr.key(args.seed)
    start = time.perf_counter()
    g = conditional_gan(key, steps, train_x, train_y)
    train_seconds = time.perf_counter() - start
    xs, acc, cfd = [], [], []
    for k in range(CLASSES):
        z = jr.normal(jr.fold_in(jr.fold_in(key, 3), k), (int(counts[k]), GAN_LATENT))
        xk = jnp.clip(jax.vmap(g)(z, jnp.full((z.shape[0],), k)), -1.0, 1.0)
        xs.append(xk)
        acc.append(float(jnp.mean(metrics.digits_predict(xk) == k)))
        cfd.append(float(metrics.digits_fd(xk, test_x[test_y == k])))
    overall = float(metrics.digits_fd(jnp.concatenate(xs), test_x))
    print(
        f"conditional GAN, {steps} steps ({train_seconds:.0f}s): accuracy mean "
        f"{np.mean(acc):.3f} min {np.min(acc):.3f}  digits-FD {overall:.2f}  class FD mean "
        f"{np.mean(cfd):.2f}",
        flush=True,
    )
    print(
        "per class accuracy / digits-FD: "
        + ", ".join(
            f"{k}: {a:.2f} / {f:.1f}" for k, (a, f) in enumerate(zip(acc, cfd, strict=True))
        )
    )
    return 0


def _figure(path: Path, images: dict[float, list[np.ndarray]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = list(images)
    fig, axes = plt.subplots(
        CLASSES, len(weights), figsize=(2.4 * len(weights), 0.42 * CLASSES + 0.6), squeeze=False
    )
    for j, w in enumerate(weights):
        for k in range(CLASSES):
            ax = axes[k, j]
            ax.imshow(
                image_grid(images[w][k][:8, 0], cols=8, pad=1, fill=-1.0),
                cmap="gray_r",
                vmin=-1,
                vmax=1,
            )
            ax.set(xticks=[], yticks=[])
            if k == 0:
                ax.set_title(f"w = {w:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(str(k), rotation=0, labelpad=8, fontsize=9)
    fig.tight_layout(pad=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
