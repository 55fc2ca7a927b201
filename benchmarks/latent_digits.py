r"""Latent particle models on scikit-learn's 8×8 digits: a VAE, then a score model + reverse
SDE and a Score GAN trained on the VAE's latent codes and decoded (latent diffusion, Rombach
et al. 2022), next to the VAE's own prior samples and reconstructions and a VQ-VAE's
reconstructions; judged, as `benchmarks/digits.py` judges the pixel-space models, by the
digits-FD to the test split and per-class coverage, with the sampling time.

    python benchmarks/latent_digits.py           # every row, full settings
    python benchmarks/latent_digits.py --fast    # tiny settings (a smoke test)

Each generative row makes as many images as the training split (1,438), so its digits-FD is
comparable with the data's train-versus-test digits-FD. The VAE's likelihood of the test
split is estimated by the IWAE bound (nats per image and bits per dimension of the
continuous density of the $[-1, 1]$-scaled pixels, not of dequantised integer data). Writes
`latent_digits.json`, `latent_digits.md` and `latent_digits.png` under `--out` (default
`reports/results`).
"""

from __future__ import annotations

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
from _common import parse_args, write_report  # benchmarks/_common.py

import gpm_sde
from gpm_sde import data, losses, metrics, nn, samplers, train
from gpm_sde.cli.figures import image_grid

LATENT = 8  # the VAE's latent dimension
HIDDEN = 256
EPS = 1e-3  # the reverse SDE stops at diffusion time ε
EDM_NOISE = {"p_mean": -1.0, "p_std": 1.2}
SHAPE = (1, 8, 8)


@dataclass(frozen=True)
class Settings:
    vae_steps: int  # Adam steps of the VAE (batch 128)
    score_steps: int  # DSM steps of the latent score model (batch 256)
    sample_steps: int  # reverse-SDE steps in latent space
    real_steps: int  # DSM steps of the latent Score GAN's data score (batch 256)
    score_gan_steps: int  # Score GAN steps (batch 256)
    vq_steps: int  # VQ-VAE steps (batch 128)
    iwae_k: int  # importance samples per test image

    @staticmethod
    def make(fast: bool) -> Settings:
        if fast:
            return Settings(200, 200, 20, 200, 100, 200, 16)
        return Settings(6000, 6000, 200, 4000, 4000, 6000, 1000)


def train_vae(key: jax.Array, settings: Settings, train_x: jax.Array):
    """A Gaussian VAE: MLP encoder and decoder (width 256, two hidden layers), a shared
    learnt pixel scale, ELBO with the analytic KL, Adam 1e-3."""
    encoder = nn.GaussianEncoder(SHAPE, LATENT, HIDDEN, 2, key=jr.fold_in(key, 0))
    decoder = nn.GaussianDecoder(LATENT, SHAPE, HIDDEN, 2, key=jr.fold_in(key, 1), log_std=-1.0)
    (encoder, decoder), history = train.fit_vae(
        encoder,
        decoder,
        train_x,
        jr.fold_in(key, 2),
        steps=settings.vae_steps,
        batch_size=128,
        lr=1e-3,
        progress=False,
    )
    return encoder, decoder, history


def latent_diffusion(key, settings: Settings, codes: jax.Array, n: int):
    """VP ε-model (ScoreMLP) trained by DSM on the codes, reverse SDE, one Tweedie step."""
    process = gpm_sde.vp()
    net = nn.ScoreMLP(LATENT, HIDDEN, 3, 32, key=jr.fold_in(key, 0))
    model, _ = train.fit_score(
        nn.EpsilonParam(net, process.sigma),
        process,
        codes,
        jr.fold_in(key, 1),
        steps=settings.score_steps,
        batch_size=256,
        ema=0.999,
        loss_options={"t_min": 1e-3},
        progress=False,
    )
    start = time.perf_counter()
    out = samplers.reverse_sde_sample(
        process, model, jr.fold_in(key, 2), n, (LATENT,), steps=settings.sample_steps, eps=EPS
    )
    z = jax.block_until_ready(samplers.tweedie_denoise(process, model, EPS, out.x))
    return z, time.perf_counter() - start


def latent_score_gan(key, settings: Settings, codes: jax.Array, n: int):
    """Score GAN on the codes: an EDM-denoiser data score trained by DSM, then an MLP
    generator moved by Int-PM along σ²(s_data − s_gen) (the settings of the pixel-space
    Score GAN of `benchmarks/digits.py`: field at G(z) + σε, two learning rates, EMA)."""
    sigma_data = float(jnp.std(codes))

    def denoiser(k: jax.Array) -> nn.EDMDenoiser:
        mlp = nn.ScoreMLP(LATENT, HIDDEN, 3, 32, key=k, fourier_scale=1.0)
        return nn.EDMDenoiser(mlp, sigma_data=sigma_data)

    real, _ = train.fit_score(
        denoiser(jr.fold_in(key, 0)),
        gpm_sde.edm(),
        codes,
        jr.fold_in(key, 1),
        steps=settings.real_steps,
        batch_size=256,
        weighting="edm",
        ema=0.999,
        loss_options={"sigma_data": sigma_data, **EDM_NOISE},
        progress=False,
    )
    generator = nn.MLPGenerator(LATENT, LATENT, HIDDEN, 3, key=jr.fold_in(key, 2))
    generator, _, _ = train.train_score_gan(
        generator,
        denoiser(jr.fold_in(key, 3)),
        real,
        jr.fold_in(key, 4),
        steps=settings.score_gan_steps,
        batch_size=256,
        warmup=settings.score_gan_steps // 10,
        g_optimizer=optax.adam(2e-4),
        s_optimizer=optax.adam(1e-3),
        field_at="noised",
        ema=0.995,
        progress=False,
        p_mean=EDM_NOISE["p_mean"],
        p_std=EDM_NOISE["p_std"],
    )
    start = time.perf_counter()
    z = jax.block_until_ready(jax.vmap(generator)(jr.normal(jr.fold_in(key, 5), (n, LATENT))))
    return z, time.perf_counter() - start


def train_vq_vae(key, settings: Settings, train_x: jax.Array):
    """VQ-VAE: 8 code vectors of dimension 4 per image, 64 codes, EMA codebook (γ = 0.99),
    commitment β = 0.25; the same MLP widths and decoder family as the VAE."""
    encoder = nn.MLPEncoder(SHAPE, (8, 4), HIDDEN, 2, key=jr.fold_in(key, 0))
    decoder = nn.GaussianDecoder((8, 4), SHAPE, HIDDEN, 2, key=jr.fold_in(key, 1), log_std=-1.0)
    # The codebook starts at encoder outputs of the data, so no code starts out of reach.
    z_e = jax.vmap(encoder)(train_x[:64]).reshape(-1, 4)
    quantizer = nn.VectorQuantizer(
        64, 4, codebook=z_e[jr.permutation(jr.fold_in(key, 2), 512)[:64]]
    )
    return train.fit_vq_vae(
        encoder,
        decoder,
        quantizer,
        train_x,
        jr.fold_in(key, 3),
        steps=settings.vq_steps,
        batch_size=128,
        beta=0.25,
        ema=0.99,
        lr=1e-3,
        progress=False,
    )


def _decode(decoder: Callable, z: jax.Array) -> tuple[jax.Array, float]:
    start = time.perf_counter()
    x = jax.block_until_ready(nn.decode_latents(decoder, z))
    return x, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, {"all": lambda: None}, argv)
    settings = Settings.make(args.fast)
    key = jr.key(args.seed)
    train_x, _ = data.digits("train")
    test_x, _ = data.digits("test")
    n = train_x.shape[0]
    reference = float(metrics.digits_fd(train_x, test_x))
    print(f"train-vs-test digits-FD {reference:.2f}", flush=True)
    rows: list[dict[str, Any]] = []
    images: dict[str, np.ndarray] = {}

    def judge(name: str, x: jax.Array, sample_s: float, total_s: float, **extra: Any) -> None:
        x = jnp.clip(x, -1.0, 1.0)
        finite = bool(jnp.all(jnp.isfinite(x)))
        fd = float(metrics.digits_fd(x, test_x)) if finite else float("nan")
        coverage = np.asarray(metrics.digits_class_coverage(x)) if finite else np.zeros(10)
        row = {
            "model": name,
            "digits_fd": fd,
            "ratio": fd / reference,
            "coverage": coverage.tolist(),
            "min_class_fraction": float(coverage.min()),
            "all_classes": bool(np.all(coverage > 0)),
            "sample_seconds": sample_s,
            "seconds": total_s,
            **extra,
        }
        rows.append(row)
        images[name] = np.asarray(x)
        print(
            f"{name:28s} digits-FD {fd:7.2f} ({fd / reference:.1f}x)  min class "
            f"{coverage.min():.3f}  sampling {sample_s:.2f}s  total {total_s:.0f}s {extra}",
            flush=True,
        )

    # 1. The VAE, its likelihood bound, reconstructions and prior samples.
    start = time.perf_counter()
    encoder, decoder, history = train_vae(jr.fold_in(key, 0), settings, train_x)
    vae_seconds = time.perf_counter() - start
    k_iwae = jr.fold_in(key, 1)
    iwae = float(
        jax.jit(lambda x, k: losses.iwae_bound(encoder, decoder, x, k, k=settings.iwae_k))(
            test_x, k_iwae
        )
    )
    test_elbo = float(losses.elbo(encoder, decoder, test_x, k_iwae, n_samples=16))
    dim = int(np.prod(SHAPE))
    likelihood = {
        "test_elbo_nats": test_elbo,
        "test_iwae_nats": iwae,
        "iwae_k": settings.iwae_k,
        "test_iwae_bits_per_dim": float(gpm_sde.bits_per_dim(iwae, dim)),
        "train_elbo_last_100": float(np.mean(history["elbo"][-100:])),
    }
    print(f"VAE: {likelihood}", flush=True)
    codes = nn.latent_codes(encoder, train_x)
    recon, t_dec = _decode(decoder, codes)
    judge("VAE reconstructions", recon, t_dec, vae_seconds)
    x, t_dec = _decode(decoder, jr.normal(jr.fold_in(key, 2), (n, LATENT)))
    judge("VAE prior samples", x, t_dec, vae_seconds)

    # 2. Latent diffusion and latent Score GAN on the (rescaled) codes, decoded.
    scale = float(jnp.std(codes))  # codes / scale have unit variance (cf. Rombach et al. 2022)
    for name, fn in (
        ("latent diffusion", latent_diffusion),
        ("latent Score GAN", latent_score_gan),
    ):
        start = time.perf_counter()
        z, t_sample = fn(jr.fold_in(key, 3 + len(rows)), settings, codes / scale, n)
        x, t_dec = _decode(decoder, z * scale)
        judge(name, x, t_sample + t_dec, time.perf_counter() - start + vae_seconds)

    # 3. VQ-VAE reconstructions and codebook usage.
    start = time.perf_counter()
    (venc, vdec, vq), vhist = train_vq_vae(jr.fold_in(key, 9), settings, train_x)
    vq_seconds = time.perf_counter() - start
    z_q, idx = vq.lookup(jax.vmap(venc)(train_x))
    x, t_dec = _decode(vdec, z_q)
    _, test_idx = vq.lookup(jax.vmap(venc)(test_x))
    judge(
        "VQ-VAE reconstructions",
        x,
        t_dec,
        vq_seconds,
        perplexity_train=float(losses.codebook_perplexity(idx, vq.num_codes)),
        perplexity_test=float(losses.codebook_perplexity(test_idx, vq.num_codes)),
        codes_used=int(np.unique(np.asarray(idx)).size),
        num_codes=vq.num_codes,
        last_batch_perplexity=float(vhist["perplexity"][-1]),
    )

    summary = {
        "reference_fd": reference,
        "fast": args.fast,
        "settings": settings.__dict__,
        "vae_likelihood": likelihood,
        "latent_scale": scale,
        "rows": rows,
    }
    lines = [
        f"Train-versus-test digits-FD: {reference:.2f}. VAE test ELBO {test_elbo:.1f} nats, "
        f"IWAE (K = {settings.iwae_k}) {iwae:.1f} nats = "
        f"{likelihood['test_iwae_bits_per_dim']:.3f} bits/dim.",
        "",
        "| model | digits-FD | × train-vs-test | smallest class share | every class | "
        "sampling (s) | total (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['digits_fd']:.2f} | {r['ratio']:.1f} | "
            f"{r['min_class_fraction']:.3f} | {'yes' if r['all_classes'] else 'no'} | "
            f"{r['sample_seconds']:.2f} | {r['seconds']:.0f} |"
        )
    vq_row = rows[-1]
    lines.append("")
    lines.append(
        f"VQ-VAE codebook perplexity {vq_row['perplexity_train']:.1f} (train), "
        f"{vq_row['perplexity_test']:.1f} (test) of {vq_row['num_codes']} codes; "
        f"{vq_row['codes_used']} codes used."
    )
    write_report(args.out, "latent_digits", summary, lines)
    _figure(args.out / "latent_digits.png", np.asarray(test_x), images)
    return 0


def _figure(path: Path, test_x: np.ndarray, images: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"test data": test_x, **images}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.4))
    for ax, (name, x) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        ax.imshow(image_grid(x[:64, 0], fill=-1.0), cmap="gray_r", vmin=-1, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.set(xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
