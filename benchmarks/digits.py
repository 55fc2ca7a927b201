r"""Score model + reverse SDE and two Score GANs (this library's settings and the GPM authors'
algorithm) on scikit-learn's 8×8 digits, on the CPU, judged by the digits-FD (the Fréchet
distance of the shipped classifier's features, the role FID plays for images) next to the
data's own train-versus-test digits-FD, and by per-class coverage.

    python benchmarks/digits.py                  # all three models, full settings
    python benchmarks/digits.py --model score-gan
    python benchmarks/digits.py --model score-gan-official
    python benchmarks/digits.py --fast           # tiny settings (a smoke test)
    python benchmarks/digits.py --model score-gan-official --official-steps 1000

Each model generates as many images as the training split (1,438), so its digits-FD to the
test split is comparable with the train-versus-test digits-FD (the FD estimator's bias depends
on the sample sizes). Writes `digits.json`, `digits.md` and `digits.png` under `--out`
(default `reports/results`).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from _common import parse_args, timed_runs, write_report  # benchmarks/_common.py

import gpm_sde
from gpm_sde import data, metrics, nn, samplers, train
from gpm_sde.cli.figures import image_grid
from gpm_sde.schedules import KarrasSigma

CHANNELS = (16, 32, 32)
SIGMA_DATA = 0.6  # about the pixel standard deviation of the digits scaled to [-1, 1]
EDM_NOISE = {"p_mean": -1.0, "p_std": 1.2}
EPS = 1e-3  # the reverse SDE stops at diffusion time ε


@dataclass(frozen=True)
class Settings:
    score_steps: int  # DSM steps of the score model (batch 128)
    sample_steps: int  # reverse-SDE steps
    real_steps: int  # DSM steps of the Score GAN's data score (batch 128)
    score_gan_steps: int  # Score GAN steps (batch `score_gan_batch`)
    score_gan_batch: int
    # Generator steps of the authors' Score GAN, each with 10 generated-score steps of batch
    # 128 (about 20x the score work of a `score-gan` step): 40, not score-gan's 1,000, so that
    # it ran within the time left on the shared 2-core machine (400 score steps in all).
    official_steps: int

    @staticmethod
    def make(fast: bool) -> Settings:
        if fast:
            return Settings(100, 20, 100, 100, 64, 10)
        return Settings(1500, 120, 1000, 1000, 64, 40)


def score_model_init(key: jax.Array) -> nn.EpsilonParam:
    """The untrained VP ε-model (U-Net) of `run_score_model` (key: `run_score_model`'s)."""
    return nn.EpsilonParam(nn.UNet8(key=jr.fold_in(key, 0), channels=CHANNELS), gpm_sde.vp().sigma)


def train_score_model(key: jax.Array, steps: int, train_x: jax.Array) -> nn.EpsilonParam:
    """`score_model_init(key)` trained by DSM on the VP process (batch 128, EMA 0.999)."""
    model, _ = train.fit_score(
        score_model_init(key),
        gpm_sde.vp(),
        train_x,
        jr.fold_in(key, 1),
        steps=steps,
        batch_size=128,
        ema=0.999,
        loss_options={"t_min": 1e-3},
        progress=False,
    )
    return model


def run_score_model(key: jax.Array, settings: Settings, train_x: jax.Array, n: int):
    """A VP ε-model (U-Net) trained by DSM, sampled by the reverse SDE to t = ε, then one
    Tweedie step."""
    process = gpm_sde.vp()
    model = train_score_model(key, settings.score_steps, train_x)
    start = time.perf_counter()
    out = samplers.reverse_sde_sample(
        process, model, jr.fold_in(key, 2), n, (1, 8, 8), steps=settings.sample_steps, eps=EPS
    )
    # The final noise-free step E[x_0 | x_ε] (Song et al. 2021, App. G).
    x = jax.block_until_ready(samplers.tweedie_denoise(process, model, EPS, out.x))
    return x, time.perf_counter() - start


def _edm_denoiser(key: jax.Array) -> nn.EDMDenoiser:
    return nn.EDMDenoiser(
        nn.UNet8(key=key, channels=CHANNELS, fourier_scale=1.0), sigma_data=SIGMA_DATA
    )


def _data_score(key: jax.Array, settings: Settings, train_x: jax.Array) -> nn.EDMDenoiser:
    """The Score GANs' data score: an EDM denoiser trained by DSM (EDM weighting)."""
    real, _ = train.fit_score(
        _edm_denoiser(jr.fold_in(key, 0)),
        gpm_sde.edm(),
        train_x,
        jr.fold_in(key, 1),
        steps=settings.real_steps,
        batch_size=128,
        weighting="edm",
        ema=0.999,
        loss_options={"sigma_data": SIGMA_DATA, **EDM_NOISE},
        progress=False,
    )
    return real


def _generate(generator: nn.ConvGenerator8, key: jax.Array, n: int):
    start = time.perf_counter()
    x = jax.block_until_ready(jax.vmap(generator)(jr.normal(key, (n, 32))))
    return x, time.perf_counter() - start


def _score_gan(key: jax.Array, settings: Settings, train_x: jax.Array, n: int, **options: Any):
    """Train a `ConvGenerator8` (32-dimensional latent) by `train_score_gan` against this
    script's data score and an online generated-score U-Net, then generate `n` images."""
    real = _data_score(key, settings, train_x)
    generator, _, _ = train.train_score_gan(
        nn.ConvGenerator8(32, key=jr.fold_in(key, 2)),
        _edm_denoiser(jr.fold_in(key, 3)),
        real,
        jr.fold_in(key, 4),
        progress=False,
        **options,
    )
    return _generate(generator, jr.fold_in(key, 5), n)


def run_score_gan(key: jax.Array, settings: Settings, train_x: jax.Array, n: int):
    """GPM Score GAN: a conv generator moved by Int-PM along σ²(s_data − s_gen)."""
    return _score_gan(
        key,
        settings,
        train_x,
        n,
        steps=settings.score_gan_steps,
        batch_size=settings.score_gan_batch,
        warmup=settings.score_gan_steps // 10,
        # Two timescales (Heusel et al. 2017): the generated score learns 5x faster than the
        # generator, so it keeps up with it.
        g_optimizer=optax.adam(2e-4),
        s_optimizer=optax.adam(1e-3),
        field_at="noised",  # the field at G(z) + σε, where the score networks were trained
        ema=0.995,  # the returned generator averages its last few hundred iterates
        p_mean=EDM_NOISE["p_mean"],
        p_std=EDM_NOISE["p_std"],
    )


def run_score_gan_official(key: jax.Array, settings: Settings, train_x: jax.Array, n: int):
    """The GPM authors' Score GAN, `**train.official_score_gan()` (σ-weighted field at
    G(z) + σε, the plain denoiser loss, 10 generated-score steps per generator step, batch
    128, Adam 2e-4 for both networks, no warm-up, no generator average), with this script's
    networks and data score as for `score-gan`. The authors' generated-score network is
    their own; here it is the same EDM U-Net as the data score. `settings.official_steps`
    generator steps (40 by default, not 1,000: see `Settings`; `--official-steps N`).

    One key is overridden: the noise-level law. The preset's `KarrasSigma(0.1, 10, 3)` is the
    authors' 2-D default; for images they use their MNIST config's sigma_min, sigma_max, rho
    = 0.32, 40, 3 (`config/score_gan/mnist/config.yaml`), the law used here.
    """
    official: dict[str, Any] = {
        **train.official_score_gan(),
        "sigma_law": KarrasSigma(0.32, 40.0, 3.0),  # the authors' MNIST law
    }
    return _score_gan(key, settings, train_x, n, steps=settings.official_steps, **official)


MODELS: dict[str, Callable[..., Any]] = {
    "score-reverse-sde": run_score_model,
    "score-gan": run_score_gan,
    "score-gan-official": run_score_gan_official,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, MODELS, argv, extra=_official_steps_option)
    settings = Settings.make(args.fast)
    if args.official_steps is not None:
        settings = dataclasses.replace(settings, official_steps=args.official_steps)
    train_x, _ = data.digits("train")
    test_x, test_y = data.digits("test")
    n = train_x.shape[0]
    reference = float(metrics.digits_fd(train_x, test_x))
    frequencies = np.bincount(np.asarray(test_y), minlength=10) / test_y.shape[0]
    print(f"train-vs-test digits-FD {reference:.2f}", flush=True)
    rows, images = [], {}
    for name, x, sample_time, total in timed_runs(MODELS, args, settings, train_x, n):
        x = jnp.clip(x, -1.0, 1.0)
        finite = bool(jnp.all(jnp.isfinite(x)))
        fd = float(metrics.digits_fd(x, test_x)) if finite else float("nan")
        coverage = np.asarray(metrics.digits_class_coverage(x)) if finite else np.zeros(10)
        rows.append(
            {
                "model": name,
                "digits_fd": fd,
                "ratio": fd / reference,
                "coverage": coverage.tolist(),
                "min_class_fraction": float(coverage.min()),
                "all_classes": bool(np.all(coverage > 0)),
                "seconds": total,
                "sample_seconds": sample_time,
                "n": n,
            }
        )
        images[name] = np.asarray(x)
        print(
            f"{name:18s} digits-FD {fd:.2f} ({fd / reference:.1f}x train-vs-test)  "
            f"min class {coverage.min():.3f}  sampling {sample_time:.1f}s  total {total:.0f}s",
            flush=True,
        )
    summary = {
        "reference_fd": reference,
        "test_class_frequencies": frequencies.tolist(),
        "fast": args.fast,
        "rows": rows,
    }
    lines = [
        f"Train-versus-test digits-FD: {reference:.2f}",
        "",
        "| model | digits-FD | × train-vs-test | smallest class share | every class | "
        "sampling (s) | total (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['digits_fd']:.2f} | {r['ratio']:.1f} | "
            f"{r['min_class_fraction']:.3f} | {'yes' if r['all_classes'] else 'no'} | "
            f"{r['sample_seconds']:.1f} | {r['seconds']:.0f} |"
        )
    write_report(args.out, "digits", summary, lines)
    _figure(args.out / "digits.png", np.asarray(test_x), images)
    return 0 if all(r["all_classes"] for r in rows) else 1


def _official_steps_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--official-steps",
        type=int,
        default=None,
        help="generator steps of score-gan-official (default: 40, or 10 with --fast)",
    )


def _figure(path: Path, test_x: np.ndarray, images: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"test data": test_x, **images}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (name, x) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        # 8 × 8 tiles two pixels apart, so that neighbouring digits do not merge into stripes.
        ax.imshow(image_grid(x[:64, 0], fill=-1.0), cmap="gray_r", vmin=-1, vmax=1)
        ax.set(title=name, xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
