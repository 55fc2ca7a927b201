"""GPM's Score GAN on five Gaussians (Franceschi et al. 2023, §4.1, Algorithm 1).

A generator G(z) is moved along the Score-GAN field σ²[∇log(q * k_σ) − ∇log(ρ_θ * k_σ)] by
Int-PM, the real score being exact here (`SmoothedMixtureScore` of the mixture, so no
pre-training is needed) and the generated score an EDM denoiser fitted online, by denoising
score matching, to the generator's own samples (`gpm_sde.train.train_score_gan`).

    python examples/score_gan_toy.py            # ~4000 steps
    python examples/score_gan_toy.py --fast     # a smoke test
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from gpm_sde import data, nn, train
from gpm_sde.metrics import mmd, mode_weights
from gpm_sde.scores import SmoothedMixtureScore

LAW = data.five_gaussians()
SIGMA_DATA = 2.2  # the data's per-coordinate standard deviation (EDM preconditioning)


def main() -> None:
    parser = argparse.ArgumentParser(description="Score GAN on five Gaussians.")
    parser.add_argument("--fast", action="store_true", help="tiny networks, a few steps")
    args = parser.parse_args()
    steps, width = (60, 32) if args.fast else (4000, 128)
    key = jr.key(0)

    generator = nn.MLPGenerator(8, 2, width, 3, key=jr.fold_in(key, 0))
    gen_score = nn.EDMDenoiser(  # a σ-conditioned score (σ, x) -> ∇log(ρ_θ * k_σ)(x)
        nn.ScoreMLP(2, width, 3, 32, key=jr.fold_in(key, 1), fourier_scale=1.0),
        sigma_data=SIGMA_DATA,
    )
    generator, gen_score, history = train.train_score_gan(
        generator,
        gen_score,
        SmoothedMixtureScore(LAW),  # the exact data score ∇log(q * k_σ)
        jr.fold_in(key, 2),
        steps=steps,
        batch_size=512,
        score_steps=2,  # generated-score descents per generator step
        warmup=steps // 10,  # fit the generated score to the initial generator first
        p_mean=-0.5,  # log σ ~ N(p_mean, p_std²): noise levels at the data's scale
        p_std=1.5,
        progress=not args.fast,
    )

    x = jax.vmap(generator)(jr.normal(jr.fold_in(key, 3), (2000, 8)))
    held_out = LAW.sample(jr.fold_in(key, 4), 2000)
    other = LAW.sample(jr.fold_in(key, 5), 2000)
    weights = mode_weights(x, LAW.means)  # the share of points nearest each mode centre
    print(f"Score GAN, {steps} steps; last score loss {float(history['score_loss'][-1]):.3f}")
    print(f"MMD²(samples, data) = {float(mmd(x, held_out)):.4f} "
          f"(two data samples: {float(mmd(other, held_out)):.4f})")  # fmt: skip
    print("mode weights:", np.round(weights, 3), "(data: 0.2 each)")
    assert bool(jnp.all(jnp.isfinite(x)))


if __name__ == "__main__":
    main()
