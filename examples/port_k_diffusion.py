"""Port: k-diffusion's Karras grid and Euler sampler onto `gpm_sde`.

k-diffusion (`k_diffusion/sampling.py`) samples with a denoiser `model(x, sigma)` on a batch,
noise level second, on the grid `get_sigmas_karras(n, sigma_min, sigma_max, rho)` (Karras et
al. 2022, eq. 5, followed by a 0). `sample_euler` with `s_churn=0` is Euler's method on the
probability-flow ODE dx/dσ = (x − D(x; σ))/σ, from x = σ_max·z down to σ = 0. The port is

    process = gpm_sde.edm(sigma_max)            # α = 1, σ(t) = t: diffusion time is σ
    score = gpm_sde.scores.from_denoiser(process, gpm_sde.scores.from_batched(D, "x,t", (d,)))
    sigmas = gpm_sde.schedules.karras_sigmas(n, sigma_min, sigma_max, rho, append_zero=True)
    sde = gpm_sde.probability_flow(process, score)
    x = gpm_sde.simulate(sde, x_T, None, ts=sigma_max - sigmas, solver=diffrax.Euler()).ys[-1]

in generation time s = T − σ (T = σ_max), from the same start x_T = σ_max·z. Both use the
exact denoiser of Gaussian data N(m, diag(v)), D(x; σ) = m + v/(v + σ²)·(x − m), and run in
float64; the script prints the largest difference between the two sample clouds.

    python examples/port_k_diffusion.py
    python examples/port_k_diffusion.py --fast
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402

import gpm_sde  # noqa: E402

M = jnp.array([1.0, -0.5])
V = jnp.array([0.3, 0.8])
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
TOL = 1e-10


def denoiser(x, sigma):
    """The exact EDM denoiser E[x0 | x0 + σn = x] of N(M, diag V), k-diffusion's calling
    convention: `x: (B, d)`, `sigma: (B,)`."""
    s2 = sigma[:, None] ** 2
    return M + V / (V + s2) * (x - M)


# ---- transcription of k-diffusion's arithmetic (not its code) -------------------------------
def reference_sigmas(n, sigma_min, sigma_max, rho):
    """`get_sigmas_karras`: eq. 5 of Karras et al. 2022, then a final 0."""
    ramp = jnp.linspace(0.0, 1.0, n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return jnp.concatenate([(hi + ramp * (lo - hi)) ** rho, jnp.zeros(1)])


def reference_euler(model, x, sigmas):
    """`sample_euler` with s_churn = 0: d = (x − D(x; σ_i))/σ_i, x ← x + d (σ_{i+1} − σ_i)."""
    s_in = jnp.ones(x.shape[0])
    for i in range(sigmas.shape[0] - 1):
        denoised = model(x, sigmas[i] * s_in)
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


# ---------------------------------------------------------------------------------------------


def port_euler(x_T, n_sigmas):
    """The same sampler with gpm_sde: EDM process, Karras grid, Euler on the PF-ODE."""
    process = gpm_sde.edm(SIGMA_MAX)
    score = gpm_sde.scores.from_denoiser(
        process, gpm_sde.scores.from_batched(denoiser, "x,t", (2,))
    )
    sigmas = gpm_sde.schedules.karras_sigmas(n_sigmas, SIGMA_MIN, SIGMA_MAX, RHO, append_zero=True)
    sde = gpm_sde.probability_flow(process, score)
    sol = gpm_sde.simulate(sde, x_T, None, ts=SIGMA_MAX - sigmas, solver=diffrax.Euler())
    assert sol.ys is not None
    return sol.ys[-1]


def compare(n: int = 256, n_sigmas: int = 40, seed: int = 0) -> tuple[float, float]:
    """(max |grid difference|, max |sample difference|) from one start x_T = σ_max z."""
    x_T = SIGMA_MAX * jr.normal(jr.key(seed), (n, 2))
    ref_sigmas = reference_sigmas(n_sigmas, SIGMA_MIN, SIGMA_MAX, RHO)
    ours_sigmas = gpm_sde.schedules.karras_sigmas(
        n_sigmas, SIGMA_MIN, SIGMA_MAX, RHO, append_zero=True
    )
    grid = float(jnp.max(jnp.abs(ref_sigmas - ours_sigmas)))
    ref = reference_euler(denoiser, x_T, ref_sigmas)
    ours = port_euler(x_T, n_sigmas)
    return grid, float(jnp.max(jnp.abs(ref - ours)))


def main() -> None:
    parser = argparse.ArgumentParser(description="k-diffusion's sample_euler vs gpm_sde.")
    parser.add_argument("--fast", action="store_true", help="fewer points and levels")
    args = parser.parse_args()
    n, n_sigmas = (64, 20) if args.fast else (4096, 100)
    grid, diff = compare(n=n, n_sigmas=n_sigmas)
    ok = grid <= TOL and diff <= TOL
    print(f"karras_sigmas vs get_sigmas_karras ({n_sigmas} levels): max |difference| = {grid:.3e}")
    print(
        f"k-diffusion sample_euler (float64, {n} points): max |difference| = {diff:.3e} "
        f"(tolerance {TOL:g}): {'agree' if ok else 'DISAGREE'}"
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
