"""Port: equinox's score-based diffusion example onto `gpm_sde`.

Equinox's example (`docs/examples/score_based_diffusion.ipynb`) trains a network `model(t, y)`
that is a *score* in diffusion time t, for the VP process with `int_beta(t) = t` on [0, 10], and
samples by solving the reverse probability-flow ODE from `y1 ~ N(0, I)` at t = 10 back to t = 0
with `diffrax.Tsit5` and a fixed step 0.1. The port is

    process = gpm_sde.processes.vp_from_int_beta(lambda t: t, T=10.0)
    sde = gpm_sde.probability_flow(process, model)
    x = gpm_sde.simulate(sde, y1, None, t1=10.0, steps=100, solver=diffrax.Tsit5()).ys[-1]

in generation time s = 10 - t. Both start from the same N(0, I) cloud: the example's prior is
N(0, I), not N(0, σ(10)² I) (σ(10)² = 1 - e^{-10}, a difference the example ignores, and so
does this port by passing its start cloud). The comparison runs in float64 with a small
equinox MLP score (untrained: the arithmetic, not the quality, is compared) and prints the
largest difference between the two sample clouds.

    python examples/port_equinox_diffusion.py
    python examples/port_equinox_diffusion.py --fast
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402

import gpm_sde  # noqa: E402

T = 10.0
TOL = 1e-10


class MLPScore(eqx.Module):
    """A small score network `model(t, y)` on one point y: (d,), as in equinox's example."""

    mlp: eqx.nn.MLP

    def __init__(self, dim: int, key):
        self.mlp = eqx.nn.MLP(dim + 1, dim, 64, 2, activation=jax.nn.silu, key=key)

    def __call__(self, t, y):
        return self.mlp(jnp.concatenate([jnp.atleast_1d(t / T), y]))


def int_beta(t):
    return t  # the example's choice: β(t) = 1


# ---- transcription of the equinox example's sampler (its arithmetic, not its code) ---------
def reference_sample(model, y1, dt0=0.1):
    """The example's `single_sample_fn`: the PF-ODE drift -½β(t)(y + model(t, y)) solved by
    Tsit5 from t1 = T to t0 = 0 with step -dt0, on one point y1."""

    def drift(t, y, args):
        _, beta = jax.jvp(int_beta, (t,), (jnp.ones_like(t),))
        return -0.5 * beta * (y + model(t, y))

    sol = diffrax.diffeqsolve(diffrax.ODETerm(drift), diffrax.Tsit5(), T, 0, -dt0, y1)
    assert sol.ys is not None
    return sol.ys[0]


# ---------------------------------------------------------------------------------------------


def port_sample(model, y1, steps=100):
    """The same sampler with gpm_sde: probability_flow + simulate in generation time."""
    process = gpm_sde.processes.vp_from_int_beta(int_beta, T=T)
    sde = gpm_sde.probability_flow(process, model)
    sol = gpm_sde.simulate(sde, y1, None, t1=T, steps=steps, solver=diffrax.Tsit5())
    assert sol.ys is not None
    return sol.ys[-1]


def compare(n: int = 64, dim: int = 2, seed: int = 0) -> float:
    """Max |reference − port| over a cloud of `n` samples from one N(0, I) start."""
    k_model, k_y = jr.split(jr.key(seed))
    model = MLPScore(dim, k_model)
    y1 = jr.normal(k_y, (n, dim))
    ref = jax.vmap(lambda y: reference_sample(model, y))(y1)
    ours = port_sample(model, y1)
    return float(jnp.max(jnp.abs(ref - ours)))


def main() -> None:
    parser = argparse.ArgumentParser(description="equinox's diffusion example vs gpm_sde.")
    parser.add_argument("--fast", action="store_true", help="fewer points")
    args = parser.parse_args()
    n = 16 if args.fast else 512
    diff = compare(n=n)
    ok = diff <= TOL
    print(
        f"equinox PF-ODE (Tsit5, 100 steps, float64), {n} points: max |difference| = "
        f"{diff:.3e} (tolerance {TOL:g}): {'agree' if ok else 'DISAGREE'}"
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
