r"""Nine generative models on GPM's five-Gaussian toy (Franceschi et al. 2023, §5), trained
from samples on the CPU, each judged by its MMD to held-out data and its mode weights.

    python benchmarks/five_gaussians.py                 # all models, full settings
    python benchmarks/five_gaussians.py --model wgan-gp  # one model
    python benchmarks/five_gaussians.py --fast           # tiny settings (a smoke test)

Bar (issue 5): MMD(generated, held-out) ≤ 3 × MMD(held-out, held-out'), both on samples of
`N_EVAL` points, with MMD the square root of the biased V-statistic MMD²_b (always ≥ 0; see
`gpm_sde.metrics.mmd(..., biased=True)`) under one fixed kernel (median-heuristic bandwidths of
the held-out data); and every mode's weight within ±0.05 of 0.2, a point belonging to its
nearest mode centre. Writes `five_gaussians.json`, `five_gaussians.md` and
`five_gaussians.png` under `--out` (default `reports/results`).

The last two models are the GPM authors' algorithms with their settings
(github.com/White-Link/gpm, `config/{edm,score_gan,discr_flow}/gaussians/config.yaml`):

- `score-gan-official`: `train.official_score_gan()` (Adam 2e-4, batch 128, 10 score steps per
  generator step, Karras σ law on [0.1, 10] with ρ = 3, σ-weighted field at the noised points,
  plain denoiser loss) for 3150 generator steps (their 31,500 score steps); an MLP generator of
  width 512 and depth 4 (ReLU) from a 128-d standard normal latent; EDM-preconditioned
  denoisers (`sigma_data = 0.5`) on `ScoreMLP`s of width 512 and depth 4 (LeakyReLU(0.2), 128
  Fourier features of scale 16 of $\tfrac14\ln\sigma$); the data denoiser pre-trained as their
  EDM config does: 10,000 steps of EDM-weighted DSM, log-normal σ (−1.2, 1.2), Adam 2e-4, batch
  128, no EMA. No generator EMA (they keep none).
- `dflow-official`: `train.official_discriminator_flow()` (non-saturating loss, no penalty,
  Adam(2e-4, β₁ = 0.5), batch 128, 56 flow steps with η = 20) for their 4000 steps; a
  time-conditioned `MLPDiscriminator` of width 512 and depth 4 (LeakyReLU(0.2), 128 Fourier
  features of scale 16 of the time $k/56$) initialised by `nn.normal_init` (N(0, 0.02²), zero
  biases); generation with `discriminator_flow_sample(D, y0, flow_steps=56, eta=20.0)`.

Both run at the authors' full widths and step counts (no reduction). The one architectural
difference that `gpm_sde.nn` imposes: the authors concatenate the Fourier features to the
network input, while `ScoreMLP` and `MLPDiscriminator` project them (a linear layer and the
activation) and add a learned shift to every hidden layer. With `--fast` both use width 32 and
a handful of steps.
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
from _common import parse_args, timed_runs, write_report  # benchmarks/_common.py

import gpm_sde
from gpm_sde import data, metrics, nn, samplers, train

N_TRAIN = 20000
N_EVAL = 2000
MMD_FACTOR = 3.0
WEIGHT_TOLERANCE = 0.05
LAW = data.five_gaussians()
SIGMA_DATA = 2.2  # the data's per-coordinate standard deviation, for the EDM preconditioning


@dataclass(frozen=True)
class Settings:
    score_steps: int
    gan_steps: int
    wgan_steps: int
    score_gan_steps: int
    dflow_rounds: int
    diffflow_steps: int
    sample_steps: int
    official_width: int  # the authors' MLP width (512)
    official_edm_steps: int  # their EDM pre-training of the data score (10,000)
    official_score_gan_steps: int  # their 31,500 score steps = 3150 generator steps
    official_dflow_steps: int  # their 4000 discriminator steps

    @staticmethod
    def make(fast: bool) -> Settings:
        if fast:
            return Settings(200, 200, 100, 200, 10, 200, 50, 32, 20, 4, 4)
        return Settings(6000, 6000, 4000, 4000, 600, 4000, 500, 512, 10000, 3150, 4000)


def vp_score_model(key: jax.Array, settings: Settings, train_x: jax.Array) -> Any:
    """A VP ε-model trained by DSM (std² weighting), EMA 0.999."""
    process = gpm_sde.vp()
    net = nn.ScoreMLP(2, 128, 3, 32, key=key)
    model, _ = train.fit_score(
        nn.EpsilonParam(net, process.sigma),
        process,
        train_x,
        jr.fold_in(key, 1),
        steps=settings.score_steps,
        batch_size=512,
        ema=0.999,
        loss_options={"t_min": 1e-3},
        progress=False,
    )
    return model


def edm_score_model(key: jax.Array, settings: Settings, train_x: jax.Array) -> Any:
    """A σ-conditioned EDM denoiser $D(x;\\sigma)$ used as the data score of $q * k_\\sigma$."""
    net = nn.ScoreMLP(2, 128, 3, 32, key=key, fourier_scale=1.0)
    model, _ = train.fit_score(
        nn.EDMDenoiser(net, sigma_data=SIGMA_DATA),
        gpm_sde.edm(),
        train_x,
        jr.fold_in(key, 1),
        steps=settings.score_steps,
        batch_size=512,
        weighting="edm",
        ema=0.999,
        loss_options={"sigma_data": SIGMA_DATA, "p_mean": -0.5, "p_std": 1.5},
        progress=False,
    )
    return model


def shared_model(shared: dict, name: str, build: Callable[[], Any]) -> Any:
    """Train a model once per run and reuse it (the two samplers share one score model)."""
    if name not in shared:
        shared[name] = build()
    return shared[name]


def sample_generator(g: Any, key: jax.Array, n: int) -> jax.Array:
    return jax.vmap(g)(jr.normal(key, (n, g.latent_dim)))


def run_reverse_sde(key, settings, train_x, shared):
    model = shared_model(
        shared, "vp", lambda: vp_score_model(jr.fold_in(key, 0), settings, train_x)
    )
    start = time.perf_counter()
    out = samplers.reverse_sde_sample(
        gpm_sde.vp(), model, jr.fold_in(key, 2), N_EVAL, (2,), steps=settings.sample_steps
    )
    return out.x, time.perf_counter() - start


def run_pf_ode(key, settings, train_x, shared):
    model = shared_model(
        shared, "vp", lambda: vp_score_model(jr.fold_in(key, 0), settings, train_x)
    )
    start = time.perf_counter()
    out = samplers.probability_flow_sample(
        gpm_sde.vp(), model, jr.fold_in(key, 3), N_EVAL, (2,), steps=settings.sample_steps // 2
    )
    return out.x, time.perf_counter() - start


def _gan_models(key):
    g = nn.MLPGenerator(8, 2, 128, 3, key=jr.fold_in(key, 10))
    d = nn.MLPDiscriminator(2, 128, 3, key=jr.fold_in(key, 11))
    return g, d


def run_nonsaturating(key, settings, train_x, shared):
    g, d = _gan_models(key)
    g, _, _ = train.train_gan(
        g,
        d,
        train_x,
        jr.fold_in(key, 12),
        steps=settings.gan_steps,
        lr=1e-3,
        batch_size=512,
        penalty="r1",
        penalty_weight=0.1,
        progress=False,
    )
    start = time.perf_counter()
    return sample_generator(g, jr.fold_in(key, 13), N_EVAL), time.perf_counter() - start


def run_wgan_gp(key, settings, train_x, shared):
    g, d = _gan_models(key)
    # Gulrajani et al. 2017, Alg. 1: λ = 10, n_critic = 5, Adam without momentum (β₂ = 0.9);
    # the returned generator is the EMA of its iterates (WGAN-GP orbits its equilibrium).
    opt = optax.adam(5e-4, b1=0.0, b2=0.9)
    g, _, _ = train.train_gan(
        g,
        d,
        train_x,
        jr.fold_in(key, 14),
        steps=settings.wgan_steps,
        loss="wgan",
        penalty="gp",
        d_steps=5,
        g_optimizer=opt,
        d_optimizer=opt,
        ema=0.999,
        batch_size=512,
        progress=False,
    )
    start = time.perf_counter()
    return sample_generator(g, jr.fold_in(key, 15), N_EVAL), time.perf_counter() - start


def run_score_gan(key, settings, train_x, shared):
    real = shared_model(
        shared, "edm", lambda: edm_score_model(jr.fold_in(key, 1), settings, train_x)
    )
    g = nn.MLPGenerator(8, 2, 128, 3, key=jr.fold_in(key, 20))
    s = nn.EDMDenoiser(
        nn.ScoreMLP(2, 128, 3, 32, key=jr.fold_in(key, 21), fourier_scale=1.0),
        sigma_data=SIGMA_DATA,
    )
    g, _, _ = train.train_score_gan(
        g,
        s,
        real,
        jr.fold_in(key, 22),
        steps=settings.score_gan_steps,
        batch_size=512,
        score_steps=2,
        warmup=settings.score_gan_steps // 10,
        p_mean=-0.5,
        p_std=1.5,
        ema=0.999,  # the generator/generated-score game orbits its fixed point
        progress=False,
    )
    start = time.perf_counter()
    return sample_generator(g, jr.fold_in(key, 23), N_EVAL), time.perf_counter() - start


DFLOW = {"t1": 3.0, "flow_steps": 30}


def run_discriminator_flow(key, settings, train_x, shared):
    d = nn.MLPDiscriminator(
        2, 128, 3, key=jr.fold_in(key, 30), time_conditioned=True, fourier_scale=1.0
    )
    d, _ = train.train_discriminator_flow(
        d,
        train_x,
        jr.fold_in(key, 31),
        steps=settings.dflow_rounds,
        n_particles=2048,
        d_steps=20,
        lr=3e-4,
        batch_size=512,
        progress=False,
        **DFLOW,
    )
    start = time.perf_counter()
    y0 = jr.normal(jr.fold_in(key, 32), (N_EVAL, 2))
    x = train.discriminator_flow_sample(d, y0, **DFLOW)
    return x, time.perf_counter() - start


def run_diffflow_gan(key, settings, train_x, shared):
    real = shared_model(
        shared, "edm", lambda: edm_score_model(jr.fold_in(key, 1), settings, train_x)
    )
    g = nn.MLPGenerator(8, 2, 128, 3, key=jr.fold_in(key, 40))
    g, _ = train.train_diffflow_gan(
        g,
        real,
        jr.fold_in(key, 41),
        steps=settings.diffflow_steps,
        g=0.0,
        beta=1.0,
        sigma=0.5,
        batch_size=1024,
        progress=False,
    )
    start = time.perf_counter()
    return sample_generator(g, jr.fold_in(key, 42), N_EVAL), time.perf_counter() - start


OFFICIAL_SIGMA_DATA = 0.5  # the authors' EDM preconditioning (their data std is about 2.2)
OFFICIAL_DEPTH = 4
OFFICIAL_EMBED = 128  # Fourier features
OFFICIAL_FOURIER_SCALE = 16.0  # their FourierEmbedding's default scale
OFFICIAL_LATENT = 128
OFFICIAL_LR = 2e-4
OFFICIAL_FLOW = {"flow_steps": 56, "eta": 20.0}


def leaky_relu(x: jax.Array) -> jax.Array:
    """LeakyReLU with the authors' negative slope 0.2."""
    return jax.nn.leaky_relu(x, 0.2)


def official_denoiser(key: jax.Array, settings: Settings) -> nn.EDMDenoiser:
    """The authors' EDM-preconditioned MLP score network (`sigma_data` 0.5, LeakyReLU)."""
    net = nn.ScoreMLP(
        2,
        settings.official_width,
        OFFICIAL_DEPTH,
        OFFICIAL_EMBED,
        key=key,
        fourier_scale=OFFICIAL_FOURIER_SCALE,
        activation=leaky_relu,
    )
    return nn.EDMDenoiser(net, sigma_data=OFFICIAL_SIGMA_DATA)


def official_data_score(key: jax.Array, settings: Settings, train_x: jax.Array) -> Any:
    """The data denoiser as the authors' `config/edm/gaussians`: EDM-weighted DSM, log-normal
    σ (−1.2, 1.2), Adam 2e-4, batch 128, 10,000 steps, no EMA."""
    start = time.perf_counter()
    model, _ = train.fit_score(
        official_denoiser(key, settings),
        gpm_sde.edm(),
        train_x,
        jr.fold_in(key, 1),
        steps=settings.official_edm_steps,
        batch_size=128,
        optimizer=optax.adam(OFFICIAL_LR),
        weighting="edm",
        loss_options={"sigma_data": OFFICIAL_SIGMA_DATA, "p_mean": -1.2, "p_std": 1.2},
        progress=False,
    )
    print(f"  (official data score pre-trained in {time.perf_counter() - start:.0f}s)", flush=True)
    return model


def run_score_gan_official(key, settings, train_x, shared):
    real = shared_model(
        shared,
        "edm-official",
        lambda: official_data_score(jr.fold_in(key, 1), settings, train_x),
    )
    g = nn.MLPGenerator(
        OFFICIAL_LATENT, 2, settings.official_width, OFFICIAL_DEPTH, key=jr.fold_in(key, 50)
    )
    s = official_denoiser(jr.fold_in(key, 51), settings)
    g, _, _ = train.train_score_gan(
        g,
        s,
        real,
        jr.fold_in(key, 52),
        steps=settings.official_score_gan_steps,
        progress=False,
        **train.official_score_gan(lr=OFFICIAL_LR),
    )
    start = time.perf_counter()
    return sample_generator(g, jr.fold_in(key, 53), N_EVAL), time.perf_counter() - start


def run_discriminator_flow_official(key, settings, train_x, shared):
    d = nn.MLPDiscriminator(
        2,
        settings.official_width,
        OFFICIAL_DEPTH,
        key=jr.fold_in(key, 60),
        time_conditioned=True,
        embed_dim=OFFICIAL_EMBED,
        fourier_scale=OFFICIAL_FOURIER_SCALE,
        activation=leaky_relu,
    )
    d = nn.normal_init(d, key=jr.fold_in(key, 61), std=0.02)
    d, _ = train.train_discriminator_flow(
        d,
        train_x,
        jr.fold_in(key, 62),
        steps=settings.official_dflow_steps,
        progress=False,
        **train.official_discriminator_flow(lr=OFFICIAL_LR),
    )
    start = time.perf_counter()
    y0 = jr.normal(jr.fold_in(key, 63), (N_EVAL, 2))
    x = train.discriminator_flow_sample(d, y0, **OFFICIAL_FLOW)
    return x, time.perf_counter() - start


MODELS: dict[str, Callable[..., Any]] = {
    "score-reverse-sde": run_reverse_sde,
    "score-pf-ode": run_pf_ode,
    "nonsaturating-gan": run_nonsaturating,
    "wgan-gp": run_wgan_gp,
    "score-gan": run_score_gan,
    "discriminator-flow": run_discriminator_flow,
    "diffflow-gan": run_diffflow_gan,
    "score-gan-official": run_score_gan_official,
    "dflow-official": run_discriminator_flow_official,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, MODELS, argv)
    settings = Settings.make(args.fast)
    key = jr.key(args.seed)
    train_x = LAW.sample(jr.fold_in(key, 100), N_TRAIN)
    held_a = LAW.sample(jr.fold_in(key, 101), N_EVAL)
    held_b = LAW.sample(jr.fold_in(key, 102), N_EVAL)
    bandwidths = metrics.median_heuristic_bandwidths(held_a, held_b)

    def mmd(x, y):
        return float(jnp.sqrt(metrics.mmd(x, y, bandwidths, biased=True)))

    baseline = mmd(held_a, held_b)
    rows, clouds = [], {}
    shared: dict[str, Any] = {}
    for name, x, sample_time, total in timed_runs(MODELS, args, settings, train_x, shared):
        x = np.asarray(x)
        finite = bool(np.all(np.isfinite(x)))
        value = mmd(jnp.asarray(x), held_b) if finite else float("nan")
        weights = np.asarray(metrics.mode_weights(x, LAW.means))
        max_dev = float(np.max(np.abs(weights - 0.2)))
        passed = finite and value <= MMD_FACTOR * baseline and max_dev <= WEIGHT_TOLERANCE
        rows.append(
            {
                "model": name,
                "mmd": value,
                "ratio": value / baseline,
                "weights": weights.tolist(),
                "max_weight_error": max_dev,
                "seconds": total,
                "sample_seconds": sample_time,
                "passed": passed,
            }
        )
        clouds[name] = x
        print(
            f"{name:20s} MMD {value:.4f} ({value / baseline:.2f}x)  weights "
            f"{np.round(weights, 3)}  {total:.0f}s  {'PASS' if passed else 'FAIL'}",
            flush=True,
        )
    summary = {"baseline_mmd": baseline, "n_eval": N_EVAL, "fast": args.fast, "rows": rows}
    write_report(args.out, "five_gaussians", summary, _table(summary))
    _figure(args.out / "five_gaussians.png", np.asarray(held_a), clouds)
    return 0 if all(r["passed"] for r in rows) else 1


def _table(summary: dict) -> list[str]:
    lines = [
        f"Held-out MMD (two samples of {summary['n_eval']}): {summary['baseline_mmd']:.4f}",
        "",
        "| model | MMD | × held-out | max weight error | time (s) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        lines.append(
            f"| {r['model']} | {r['mmd']:.4f} | {r['ratio']:.2f} | {r['max_weight_error']:.3f} "
            f"| {r['seconds']:.0f} | {'PASS' if r['passed'] else 'FAIL'} |"
        )
    return lines


def _figure(path: Path, data_x: np.ndarray, clouds: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"held-out data": data_x, **clouds}
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8))
    for ax, (name, x) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
        ax.set(xlim=(-5, 5), ylim=(-5, 5), title=name, xticks=[], yticks=[], aspect="equal")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
