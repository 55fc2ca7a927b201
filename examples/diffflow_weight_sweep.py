"""DiffFlow's weight sweep: one law, a whole range of dynamics between GAN and diffusion.

This library's form of the DiffFlow SDE (Zhang et al. 2023) moves particles by

    dx = [β ∇log q_σ(s)(x) − (β − ½g²) ∇log p_s(x)] ds + g dW,

whose law does not depend on g (its Fokker–Planck equation is free of g). Sweeping g from 0
(the GAN end: deterministic particles pushed by the gradient of the optimal discriminator's
logit) to √(2β) (annealed Langevin dynamics, no generated score) moves weight from the
generated-score term to the noise.
The table shows what changes — the generated-score weight and how far each particle travels —
and what does not: the MMD between each cloud and the g = 0 cloud stays near the noise floor
(the MMD between two data samples), up to the small bias of the kernel estimate that the
g = 0 end relies on, which shrinks as the number of particles grows.

The generated score ∇log p_s is the mean-field kernel estimate from the cloud itself
(`gpm_sde.scores.KernelScore`); the annealed data score is exact for the mixture.

    python examples/diffflow_weight_sweep.py
    python examples/diffflow_weight_sweep.py --fast
"""

from __future__ import annotations

import argparse

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import gpm_sde
from gpm_sde.metrics import median_heuristic_bandwidths, mmd
from gpm_sde.scores import AnnealedScore, KernelScore, SmoothedMixtureScore

LAW = gpm_sde.data.five_gaussians()
BETA, T = 1.0, 3.0


def sigma(s):
    """σ(s), annealed linearly from 2 to 0.3 over [0, T]."""
    return 2.0 + (0.3 - 2.0) * s / T


@eqx.filter_jit
def flow(g: jax.Array, n: int, steps: int, h: float, key: jax.Array) -> jax.Array:
    """The whole path of n particles from N(0, I) at noise level g: (steps + 1, n, 2)."""
    real = AnnealedScore(SmoothedMixtureScore(LAW), sigma)
    sde = gpm_sde.diffflow(real, KernelScore(h), BETA, g)
    x0 = jr.normal(jr.fold_in(key, 0), (n, 2))
    saveat = diffrax.SaveAt(t0=True, steps=True)
    sol = gpm_sde.simulate(sde, x0, jr.fold_in(key, 1), t1=T, steps=steps, saveat=saveat)
    assert sol.ys is not None
    return sol.ys


def main() -> None:
    parser = argparse.ArgumentParser(description="DiffFlow across its noise level g.")
    parser.add_argument("--fast", action="store_true", help="fewer particles, steps and g's")
    args = parser.parse_args()
    n, steps, n_g = (800, 60, 3) if args.fast else (3000, 200, 6)
    h = 0.35 * (n / 2000) ** -0.25  # kernel bandwidth of the generated score, h ∝ N^(-1/4)
    gs = np.linspace(0.0, np.sqrt(2 * BETA), n_g)
    data = LAW.sample(jr.key(100), n)
    bw = median_heuristic_bandwidths(data, LAW.sample(jr.key(101), n))

    def distance(x, y) -> float:
        return float(jnp.sqrt(jnp.maximum(mmd(x, y, bw, biased=True), 0.0)))

    floor = distance(data, LAW.sample(jr.key(101), n))
    print(f"{n} particles, {steps} steps, β = {BETA}, σ(s): 2 → 0.3; noise floor {floor:.4f}")
    print(f"{'g':>6} {'β − g²/2':>9} {'path length':>12} {'MMD to data':>12} {'MMD to g = 0':>13}")
    ref = None
    for i, g in enumerate(gs):
        # g is an array: every member shares one compilation (g = 0 adds zero noise).
        path = flow(jnp.asarray(g, dtype=float), n, steps, h, jr.key(i))
        end = path[-1]
        length = float(jnp.linalg.norm(jnp.diff(path, axis=0), axis=-1).sum(0).mean())
        ref = end if ref is None else ref
        to_ref = "-" if i == 0 else f"{distance(end, ref):.4f}"
        weight = round(BETA - g**2 / 2, 12) + 0.0  # no "-0.000" at the Langevin end
        print(f"{g:>6.3f} {weight:>9.3f} {length:>12.2f} {distance(end, data):>12.4f} "
              f"{to_ref:>13}")  # fmt: skip


if __name__ == "__main__":
    main()
