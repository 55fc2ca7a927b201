"""GPM's Discriminator Flow on five Gaussians (Franceschi et al. 2023, §4.2 and §6.1): a GAN
without a generator.

A time-conditioned discriminator D(s, x) is trained on the particles of its own flow
dx/ds = −∇c(D(s, x)) (`gpm_sde.train.train_discriminator_flow`, Algorithm 2); generating is
flowing fresh Gaussian noise with it (`gpm_sde.train.discriminator_flow_sample`, Algorithm 3).

    python examples/discriminator_flow_toy.py
    python examples/discriminator_flow_toy.py --fast
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from gpm_sde import data, nn, train
from gpm_sde.metrics import mmd, mode_weights

LAW = data.five_gaussians()  # five Gaussians of std 0.5 on a circle of radius 3
FLOW = {"t1": 3.0, "flow_steps": 30}  # the flow's horizon and Euler steps, in training and use


def main() -> None:
    parser = argparse.ArgumentParser(description="Discriminator Flow on five Gaussians.")
    parser.add_argument("--fast", action="store_true", help="a tiny network, a few rounds")
    args = parser.parse_args()
    rounds, width, particles = (6, 32, 512) if args.fast else (600, 128, 2048)
    key = jr.key(0)

    discriminator = nn.MLPDiscriminator(
        2, width, 3, key=jr.fold_in(key, 0), time_conditioned=True, fourier_scale=1.0
    )
    discriminator, history = train.train_discriminator_flow(
        discriminator,
        LAW,  # a law with .sample(key, n): fresh data every descent
        jr.fold_in(key, 1),
        steps=rounds,  # each round: flow the particles, then d_steps descents of D
        n_particles=particles,
        d_steps=20,
        lr=3e-4,
        batch_size=512,
        progress=not args.fast,
        **FLOW,
    )

    y0 = jr.normal(jr.fold_in(key, 2), (2000, 2))  # generation: flow fresh noise
    x = train.discriminator_flow_sample(discriminator, y0, **FLOW)
    held_out = LAW.sample(jr.fold_in(key, 3), 2000)
    other = LAW.sample(jr.fold_in(key, 4), 2000)
    weights = mode_weights(x, LAW.means)  # the share of points nearest each mode centre
    print(f"Discriminator Flow, {rounds} rounds; last d_loss {float(history['d_loss'][-1]):.3f}")
    print(f"MMD²(samples, data) = {float(mmd(x, held_out)):.4f} "
          f"(two data samples: {float(mmd(other, held_out)):.4f})")  # fmt: skip
    print("mode weights:", np.round(weights, 3), "(data: 0.2 each)")
    assert bool(jnp.all(jnp.isfinite(x)))


if __name__ == "__main__":
    main()
