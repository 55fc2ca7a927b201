r"""Denoising Diffusion GAN on the digits against DDPM, DDIM and DPM-Solver++(2M) at the same
number of network evaluations (NFE), with the trained digits score model.

    python benchmarks/ddgan_digits.py                 # full settings (T = 4, 4000 steps)
    python benchmarks/ddgan_digits.py --fast          # tiny settings (a smoke test)
    python benchmarks/ddgan_digits.py --T 2 --em-steps 0   # two steps, no reference row

Denoising Diffusion GAN (Xiao, Kreis & Vahdat 2022): `nn.DDGANUNet8` (the 8×8 U-Net, channels
16, 32, 32, with the latent, 32 numbers, mapped into its conditioning) and
`nn.DDGANConvDiscriminator8` (channels 64) trained by `train.train_ddgan` on the train split
(non-saturating loss, Adam with betas 0.5, 0.9, R1 with gamma = 0.05, their VP chain of T
steps, as the authors' defaults; learning rates 1.5e-4 for the generator, as theirs, and 4e-4
for the discriminator, not their 1e-4: with 1e-4 and 32 channels the discriminator's loss
stayed at 2 ln 2 and the digits-FD at 166; batch 128, EMA 0.999 of the generator), then
`samplers.ddgan_sample`: NFE = T. Baselines: `benchmarks/digits.py`'s score model (a VP
ε-model U-Net with the same channels, 1,500 DSM steps, cached under `--cache` as by
`benchmarks/digits_nfe.py`) sampled with NFE = T by DDPM's ancestral step and DDIM
(`samplers.euler_ancestral`, eta 1 and 0) and DPM-Solver++(2M), each on its default grid, and
by 1000 steps of Euler–Maruyama (the reference of `digits_nfe.py`; `--em-steps 0` skips
it). Each generates as many images as the train split (1,438); digits-FD to the test split,
and the smallest share of a class among the shipped classifier's predictions. Writes
`ddgan_digits_T{T}.json` and `.md` under `--out` (default `reports/results`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _common import write_report  # benchmarks/_common.py
from digits import EPS  # benchmarks/digits.py
from digits_nfe import trained_model  # benchmarks/digits_nfe.py

import gpm_sde
from gpm_sde import data, metrics, nn, samplers, train

LATENT = 32


def train_ddgan(
    key: jax.Array, T: int, steps: int, train_x: jax.Array, args: argparse.Namespace
) -> nn.DDGANUNet8:
    """The EMA generator of a Denoising Diffusion GAN of `T` steps trained on `train_x`."""
    g = nn.DDGANUNet8(LATENT, T, key=jr.fold_in(key, 0), channels=(16, 32, 32))
    d = nn.DDGANConvDiscriminator8(T, key=jr.fold_in(key, 1), channels=args.d_channels)
    g, _, history = train.train_ddgan(
        g,
        d,
        train_x,
        jr.fold_in(key, 2),
        steps=steps,
        num_steps=T,
        batch_size=128,
        ema=0.999,
        g_lr=args.g_lr,
        d_lr=args.d_lr,
        r1_gamma=args.r1_gamma,
        progress=False,
    )
    last = {k: float(np.mean(v[-100:])) for k, v in history.items() if k != "step"}
    print(f"  last 100 steps: {last}", flush=True)
    return g


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--T", type=int, default=4, help="denoising steps = NFE (4)")
    parser.add_argument("--steps", type=int, default=None, help="DDGAN steps (4000)")
    parser.add_argument("--g-lr", type=float, default=1.5e-4, help="generator Adam rate")
    parser.add_argument("--d-lr", type=float, default=4e-4, help="discriminator Adam rate")
    parser.add_argument("--d-channels", type=int, default=64, help="discriminator width")
    parser.add_argument("--r1-gamma", type=float, default=0.05, help="R1 weight")
    parser.add_argument("--tag", default="", help="a suffix of the report's name")
    parser.add_argument("--score-steps", type=int, default=None, help="DSM steps (1500)")
    parser.add_argument(
        "--em-steps", type=int, default=None, help="reference steps (1000; 0: skip it)"
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp"))
    parser.add_argument("--out", type=Path, default=Path("reports/results"))
    args = parser.parse_args(argv)
    steps = args.steps or (50 if args.fast else 4000)
    score_steps = args.score_steps or (100 if args.fast else 1500)
    em_steps = args.em_steps if args.em_steps is not None else (50 if args.fast else 1000)
    T = args.T

    train_x, _ = data.digits("train")
    test_x, _ = data.digits("test")
    n = train_x.shape[0]
    reference = float(metrics.digits_fd(train_x, test_x))
    print(f"train-vs-test digits-FD {reference:.2f}", flush=True)
    key = jr.key(args.seed)
    rows = []

    def record(name: str, nfe: int, x: jax.Array, seconds: float, **extra: float) -> None:
        x = jnp.clip(x, -1.0, 1.0)
        finite = bool(jnp.all(jnp.isfinite(x)))
        fd = float(metrics.digits_fd(x, test_x)) if finite else float("nan")
        coverage = np.asarray(metrics.digits_class_coverage(x)) if finite else np.zeros(10)
        rows.append(
            {
                "method": name,
                "nfe": nfe,
                "digits_fd": fd,
                "min_class_fraction": float(coverage.min()),
                "seconds": seconds,
                **extra,
            }
        )
        print(
            f"{name:34s} NFE {nfe:5d}  digits-FD {fd:8.2f}  min class {coverage.min():.3f}  "
            f"({seconds:.0f}s)",
            flush=True,
        )

    start = time.perf_counter()
    g = train_ddgan(jr.fold_in(key, 10), T, steps, train_x, args)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    x = samplers.ddgan_sample(g, samplers.ddgan_chain(T), jr.fold_in(key, 11), n, (1, 8, 8)).x
    record(
        f"Denoising Diffusion GAN, T = {T}",
        T,
        jax.block_until_ready(x),
        time.perf_counter() - start,
        train_seconds=train_seconds,
    )

    # The score model of benchmarks/digits.py (its key: fold_in(key(seed), 0)).
    score_key = jr.fold_in(jr.key(args.seed), 0)
    model, score_seconds = trained_model(score_key, score_steps, train_x, args.cache, args.seed)
    process = gpm_sde.vp()
    sample_key = jr.fold_in(score_key, 2)
    few_step = [
        ("DDPM ancestral (euler_ancestral, eta = 1)", samplers.euler_ancestral, {"eta": 1.0}),
        ("DDIM (euler_ancestral, eta = 0)", samplers.euler_ancestral, {"eta": 0.0}),
        ("DPM-Solver++(2M)", samplers.dpm_solver_pp_2m, {}),
    ]
    for name, sampler, options in few_step:
        start = time.perf_counter()
        x = sampler(process, model, sample_key, n, (1, 8, 8), steps=T, **options).x
        record(name, T, jax.block_until_ready(x), time.perf_counter() - start)
    if em_steps > 0:  # the slowest row: about 25 minutes on 2 CPU cores
        start = time.perf_counter()
        out = samplers.reverse_sde_sample(
            process, model, sample_key, n, (1, 8, 8), steps=em_steps, eps=EPS
        )
        x = samplers.tweedie_denoise(process, model, EPS, out.x)
        record(
            f"Euler–Maruyama {em_steps} steps + Tweedie",
            em_steps + 1,
            jax.block_until_ready(x),
            time.perf_counter() - start,
        )
    summary = {
        "reference_fd": reference,
        "T": T,
        "ddgan_steps": steps,
        "ddgan_options": {k: getattr(args, k) for k in ("g_lr", "d_lr", "d_channels", "r1_gamma")},
        "score_steps": score_steps,
        "score_train_seconds": score_seconds,
        "n": n,
        "rows": rows,
    }
    lines = [
        f"Train-versus-test digits-FD {reference:.2f}; DDGAN {steps} steps "
        f"({train_seconds:.0f} s), score model {score_steps} DSM steps",
        "",
        "| method | NFE | digits-FD | smallest class share | sampling (s) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['nfe']} | {r['digits_fd']:.2f} | "
            f"{r['min_class_fraction']:.3f} | {r['seconds']:.1f} |"
        )
    print("\n".join(lines), flush=True)
    write_report(args.out, f"ddgan_digits_T{T}{args.tag}", summary, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
