r"""GAN–diffusion hybrids on the five Gaussians: Denoising Diffusion GAN against DDPM/DDIM at the
same NFE, and truncated diffusion (TDPM) against NFE and the truncation time.

    python benchmarks/hybrids.py            # the full run (about 10 minutes on 2 CPU cores)
    python benchmarks/hybrids.py --fast     # a smoke run (short training, small clouds)

Quality is measured as in `benchmarks/quality_per_nfe.py`: the MMD (square root of the biased
MMD², median-heuristic bandwidths of held-out data) of `N` samples to `N` held-out data points,
mean over `R` sampling keys, and the mode weights (share of points nearest each centre; 0.2
each for the data). The *held-out floor* is the 95% quantile of the MMD between two
independent data samples of the same size (20 pairs): a sampler below it is indistinguishable
from the data at this sample size.

1. **Denoising Diffusion GAN** (Xiao et al. 2022), `T` = 2 and 4 denoising steps on their VP
   chain (`samplers.ddgan_chain`), trained with `train.train_ddgan` (MLP generator and
   discriminator, non-saturating loss, R1 γ = 0.05, EMA of the generator). NFE = `T`
   generator calls. Baselines at the same NFE, all with the **exact** noise model of the
   mixture (so they show the best a Gaussian reverse step can do): DDPM ancestral sampling
   and DDIM on a 1000-step linear-schedule chain with `T` (linspace-spaced) steps, and DDPM
   ancestral sampling on the DDGAN chain itself (the same `T` steps with a Gaussian instead
   of a GAN kernel); and, with the VP ε-model of `benchmarks/five_gaussians.py` trained by
   DSM (6000 steps), `samplers.euler_ancestral` with η = 1 (DDPM's ancestral step) and η = 0
   (DDIM) on their default Karras grid with `T` steps.
2. **TDPM** (Zheng et al. 2022): a generator of the VP marginal $p_{t_{\rm trunc}}$, then
   DPM-Solver++(2M) from $t_{\rm trunc}$ with the exact score, on the Karras grid of
   `samplers.tdpm_grid` ending at $\epsilon = 10^{-3}$ (`to_zero=False`); NFE = steps + 1.
   Generators: the exact marginal (the best TDPM can do at that truncation) and an MLP GAN
   trained with `train.train_gan` on samples of $p_{t_{\rm trunc}}$. Reference:
   DPM-Solver++(2M) from $T = 1$ with NFE steps on the same kind of grid.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import gpm_sde
from gpm_sde import data, metrics, nn, samplers, train
from gpm_sde.scores import MixtureMarginalScore

DDGAN_T = (2, 4)
TRUNC = (0.2, 0.4, 0.6)
TDPM_STEPS = (1, 2, 4, 8)


class Quality:
    """MMD to held-out data (and its floor) and mode weights, for one data law."""

    def __init__(self, law: Any, n: int, repeats: int, key: Any):
        self.law, self.n, self.repeats, self.key = law, n, repeats, key
        self.held = law.sample(jr.fold_in(key, 1), n)
        self.bw = metrics.median_heuristic_bandwidths(self.held, law.sample(jr.fold_in(key, 2), n))
        floor = [self.mmd(law.sample(jr.fold_in(key, 100 + i), n)) for i in range(20)]
        self.floor = float(np.quantile(floor, 0.95))
        self.floor_median = float(np.median(floor))

    def mmd(self, x: Any) -> float:
        return float(jnp.sqrt(metrics.mmd(x, self.held, self.bw, biased=True)))

    def __call__(self, run: Any) -> tuple[float, np.ndarray]:
        """Mean MMD and mean mode weights of `run(key)` over the repeat keys."""
        values, weights = [], []
        for r in range(self.repeats):
            x = run(jr.fold_in(self.key, 1000 + r))
            values.append(self.mmd(x))
            weights.append(np.asarray(metrics.mode_weights(x, self.law.means)))
        return float(np.mean(values)), np.mean(weights, axis=0)


def train_ddgan_model(law: Any, T: int, steps: int, key: Any) -> tuple[Any, float]:
    kg, kd, kt = jr.split(key, 3)
    G = nn.DDGANGenerator(2, 2, T, 128, 3, key=kg)
    D = nn.DDGANDiscriminator(2, T, 128, 3, key=kd)
    start = time.perf_counter()
    G, _, _ = train.train_ddgan(
        G, D, law, kt, steps=steps, num_steps=T, batch_size=256, g_lr=2e-4, d_lr=2e-4,
        ema=0.999, progress=False, chunk=250,
    )  # fmt: skip
    return G, time.perf_counter() - start


def train_marginal_gan(law: Any, steps: int, key: Any) -> tuple[Any, float]:
    kg, kd, kt = jr.split(key, 3)
    G = nn.MLPGenerator(2, 2, 128, 3, key=kg)
    D = nn.MLPDiscriminator(2, 128, 3, key=kd)
    start = time.perf_counter()
    G, _, _ = train.train_gan(
        G, D, law, kt, steps=steps, batch_size=256, lr=2e-4, ema=0.999, progress=False,
        chunk=250,
    )  # fmt: skip
    return G, time.perf_counter() - start


def train_score_model(law: Any, steps: int, key: Any) -> tuple[Any, float]:
    """The VP ε-model of `benchmarks/five_gaussians.py` (DSM, batch 512, EMA 0.999)."""
    process = gpm_sde.vp()
    start = time.perf_counter()
    model, _ = train.fit_score(
        nn.EpsilonParam(nn.ScoreMLP(2, 128, 3, 32, key=key), process.sigma),
        process, law.sample(jr.fold_in(key, 1), 20000), jr.fold_in(key, 2), steps=steps,
        batch_size=512, ema=0.999, loss_options={"t_min": 1e-3}, progress=False,
    )  # fmt: skip
    return model, time.perf_counter() - start


def ddgan_section(q: Quality, steps: int, score_steps: int, key: Any) -> list[dict[str, Any]]:
    law = q.law
    n = q.n
    long_chain = gpm_sde.ddpm()
    long_eps = samplers.exact_eps_model(long_chain, law)
    process = gpm_sde.vp()
    model, score_seconds = train_score_model(law, score_steps, jr.fold_in(key, 99))
    trained = f"trained VP ε-model ({score_steps} steps, {score_seconds:.0f} s)"
    rows: list[dict[str, Any]] = []
    for T in DDGAN_T:
        chain = samplers.ddgan_chain(T)
        G, seconds = train_ddgan_model(law, T, steps, jr.fold_in(key, T))
        runs = {
            f"DDGAN (trained, {steps} steps, {seconds:.0f} s)": lambda k, G=G, c=chain: (
                samplers.ddgan_sample(G, c, k, n, (2,)).x
            ),
            "DDPM ancestral, exact ε, 1000-step chain": lambda k, T=T: (
                samplers.ddpm_ancestral(long_chain, long_eps, k, n, (2,), steps=T).x
            ),
            "DDIM, exact ε, 1000-step chain": lambda k, T=T: (
                samplers.ddim(long_chain, long_eps, k, n, (2,), steps=T).x
            ),
            "DDPM ancestral, exact ε, DDGAN chain": lambda k, c=chain: (
                samplers.ddpm_ancestral(c, samplers.exact_eps_model(c, law), k, n, (2,)).x
            ),
            f"Euler ancestral η = 1 (DDPM), {trained}": lambda k, T=T: (
                samplers.euler_ancestral(process, model, k, n, (2,), steps=T).x
            ),
            f"DDIM (Euler ancestral η = 0), {trained}": lambda k, T=T: (
                samplers.euler_ancestral(process, model, k, n, (2,), steps=T, eta=0.0).x
            ),
        }
        for name, run in runs.items():
            value, weights = q(run)
            rows.append({"nfe": T, "method": name, "mmd": value, "weights": weights.tolist()})
            print(f"| {T} | {name} | {value:.4f} | {np.round(weights, 3)} |", flush=True)
    return rows


def tdpm_section(q: Quality, steps: int, key: Any) -> list[dict[str, Any]]:
    law, n = q.law, q.n
    process = gpm_sde.vp()
    score = MixtureMarginalScore(process, law)
    sampler = samplers.dpm_solver_pp_2m
    rows: list[dict[str, Any]] = []
    for k in TDPM_STEPS:
        nfe = k + 1
        value, weights = q(
            lambda kk, nfe=nfe: sampler(process, score, kk, n, (2,), steps=nfe, to_zero=False).x
        )
        rows.append({"t_trunc": 1.0, "generator": "none (prior)", "nfe": nfe, "mmd": value})
        print(f"| 1.0 (no truncation) | prior N(0, I) | {nfe} | {value:.4f} | "
              f"{np.round(weights, 3)} |", flush=True)  # fmt: skip
    for i, t_trunc in enumerate(TRUNC):
        marginal = process.marginal(law, t_trunc)
        G, seconds = train_marginal_gan(marginal, steps, jr.fold_in(key, i))
        gens = {"exact marginal": marginal, f"GAN ({steps} steps, {seconds:.0f} s)": G}
        at_trunc = Quality(marginal, n, 1, jr.fold_in(key, 50 + i))
        gan_mmd_trunc, _ = at_trunc(lambda kk, G=G: jax.vmap(G)(jr.normal(kk, (n, 2))))
        print(f"(GAN at t_trunc = {t_trunc}: MMD to p_t {gan_mmd_trunc:.4f}, floor "
              f"{at_trunc.floor:.4f})", flush=True)  # fmt: skip
        for gname, gen in gens.items():
            for k in TDPM_STEPS:

                def run(kk, gen=gen, k=k, t_trunc=t_trunc):
                    return samplers.tdpm_sample(
                        gen,
                        process,
                        score,
                        kk,
                        n,
                        t_trunc=t_trunc,
                        steps=k,
                        sampler=sampler,
                        to_zero=False,
                    ).x

                value, weights = q(run)
                rows.append(
                    {"t_trunc": t_trunc, "generator": gname, "nfe": k + 1, "mmd": value,
                     "weights": weights.tolist()}
                )  # fmt: skip
                print(f"| {t_trunc} | {gname} | {k + 1} | {value:.4f} | "
                      f"{np.round(weights, 3)} |", flush=True)  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    n, repeats = (1000, 2) if args.fast else (2000, 3)
    ddgan_steps, gan_steps = (300, 300) if args.fast else (4000, 2000)
    score_steps = 200 if args.fast else 6000
    key = jr.key(args.seed)
    law = data.five_gaussians()
    start = time.perf_counter()
    q = Quality(law, n, repeats, jr.fold_in(key, 0))
    print(f"# Five Gaussians: MMD of {n} samples (mean of {repeats} keys)\n")
    print(f"held-out floor: median {q.floor_median:.4f}, 95% quantile {q.floor:.4f}\n")
    print("## Denoising Diffusion GAN vs DDPM/DDIM at the same NFE\n")
    print("| NFE | method | MMD | mode weights |\n|---|---|---|---|", flush=True)
    ddgan_rows = ddgan_section(q, ddgan_steps, score_steps, jr.fold_in(key, 1))
    print("\n## TDPM: generator of p_{t_trunc}, then DPM-Solver++(2M), exact score\n")
    print("| t_trunc | generator | NFE | MMD | mode weights |\n|---|---|---|---|---|")
    tdpm_rows = tdpm_section(q, gan_steps, jr.fold_in(key, 2))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.out is not None:
        summary = {"floor": q.floor, "ddgan": ddgan_rows, "tdpm": tdpm_rows}
        args.out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
