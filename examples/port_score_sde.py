"""Port: score_sde (Song et al. 2021, yang-song/score_sde_pytorch) onto `gpm_sde`.

score_sde's SDEs (`sde_lib.py`) are `gpm_sde.vp`, `gpm_sde.subvp` and `gpm_sde.ve` with the
same defaults (β_min = 0.1, β_max = 20, σ_min = 0.01, σ_max = 50, T = 1); its score
`score_fn(x, t)` is a batched score in diffusion time (`gpm_sde.scores.from_batched(fn, "x,t",
event_shape)`). This script checks four things against a float64 jax.numpy transcription of
score_sde's arithmetic (not its code), on the exact score of Gaussian data N(m, diag(v)):

1. the processes: `marginal_prob` (mean coefficient, std) and `sde` (drift, diffusion) vs
   `alpha`, `sigma`, `drift_coeff`, `diffusion`: round-off;
2. the ancestral VP sampler (`AncestralSamplingPredictor`, no corrector, `noise_removal`):
   `gpm_sde.samplers.ddpm_ancestral` on the chain of score_sde's discrete betas
   β_k = (β_min + k(β_max − β_min)/(N − 1))/N with `variance="beta"`, and the noise model
   ε̂(n, x) = −sqrt(1 − ᾱ_n) s(t_{N−n}, x) that calls the score at score_sde's time
   t_i = T − i(T − ε)/(N − 1) (its `timestep = (t (N − 1)/T).long()` is N − 1 − i): same noise,
   round-off;
3. the PC sampler (`ReverseDiffusionPredictor` + `LangevinCorrector`, corrector first,
   `noise_removal`) vs `gpm_sde.samplers.predictor_corrector` on the grid t_0..t_{N−1}, 0, on
   the same noise: score_sde steps with its discrete β_k, gpm_sde with the exact transition
   1 − α(t_k)²/α(t_{k+1})², which agree to O(1/N²) per step, so the paths agree to O(1/N),
   not to round-off (the script shows the difference shrinking with N doubled);
4. the likelihood (`likelihood.py`): scipy's `solve_ivp` RK45 at rtol = atol = 1e-5 from
   ε = 1e-5 to T with the exact divergence and the N(0, I) prior, vs `gpm_sde.log_likelihood`
   (diffrax Tsit5, same tolerances, `prior=IsotropicNormal(1.0)`): solver tolerance.

    python examples/port_score_sde.py
    python examples/port_score_sde.py --fast
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import gpm_sde  # noqa: E402

B0, B1, SMIN, SMAX, T = 0.1, 20.0, 0.01, 50.0, 1.0
M = jnp.array([1.0, -0.5])
V = jnp.array([0.3, 0.8])
ROUNDOFF = 1e-10


# ---- transcription of score_sde's arithmetic (not its code) ---------------------------------
def ref_vp(t):
    """VPSDE: (mean coefficient, std, drift coefficient, diffusion) at t."""
    lmc = -0.25 * t**2 * (B1 - B0) - 0.5 * t * B0
    beta = B0 + t * (B1 - B0)
    return jnp.exp(lmc), jnp.sqrt(1.0 - jnp.exp(2.0 * lmc)), -0.5 * beta, jnp.sqrt(beta)


def ref_subvp(t):
    lmc = -0.25 * t**2 * (B1 - B0) - 0.5 * t * B0
    beta = B0 + t * (B1 - B0)
    discount = 1.0 - jnp.exp(-2.0 * B0 * t - (B1 - B0) * t**2)
    return jnp.exp(lmc), 1.0 - jnp.exp(2.0 * lmc), -0.5 * beta, jnp.sqrt(beta * discount)


def ref_ve(t):
    sigma = SMIN * (SMAX / SMIN) ** t
    g = sigma * jnp.sqrt(2.0 * (jnp.log(SMAX) - jnp.log(SMIN)))
    return jnp.ones_like(t), sigma, jnp.zeros_like(t), g


def vp_score(x, t):
    """score_fn(x, t) on a batch: the exact VP score of N(M, diag V) data, t: (B,)."""
    a, s, _, _ = ref_vp(t)
    a, s = a[:, None], s[:, None]
    return -(x - a * M) / (a**2 * V + s**2)


def ref_discrete_betas(N):
    return jnp.linspace(B0 / N, B1 / N, N)


def ref_ancestral(x, N, eps, noise):
    """pc_sampler with AncestralSamplingPredictor (VP) and no corrector, noise_removal=True."""
    betas = ref_discrete_betas(N)
    timesteps = jnp.linspace(T, eps, N)
    x_mean = x
    for i in range(N):
        t = jnp.full((x.shape[0],), timesteps[i])
        k = int(timesteps[i] * (N - 1) / T)  # `.long()`
        beta = betas[k]
        x_mean = (x + beta * vp_score(x, t)) / jnp.sqrt(1.0 - beta)
        x = x_mean + jnp.sqrt(beta) * noise(i)
    return x_mean


def ref_pc(x, N, eps, snr, noise_pred, noise_corr):
    """pc_sampler: LangevinCorrector (one step) then ReverseDiffusionPredictor, VP, denoise."""
    betas = ref_discrete_betas(N)
    alphas = 1.0 - betas
    timesteps = jnp.linspace(T, eps, N)
    x_mean = x
    for i in range(N):
        t = jnp.full((x.shape[0],), timesteps[i])
        k = int(timesteps[i] * (N - 1) / T)
        grad = vp_score(x, t)
        z = noise_corr(i)
        grad_norm = jnp.mean(jnp.linalg.norm(grad, axis=-1))
        noise_norm = jnp.mean(jnp.linalg.norm(z, axis=-1))
        step = (snr * noise_norm / grad_norm) ** 2 * 2.0 * alphas[k]
        x_mean = x + step * grad
        x = x_mean + jnp.sqrt(2.0 * step) * z
        f = jnp.sqrt(alphas[k]) * x - x - betas[k] * vp_score(x, t)  # rsde.discretize
        x_mean = x - f
        x = x_mean + jnp.sqrt(betas[k]) * noise_pred(i)
    return x_mean


def ref_likelihood(x, eps=1e-5, tol=1e-5):
    """likelihood.py: RK45 on (x, ∫div) from eps to T, exact divergence, N(0, I) prior."""
    d = x.shape[0]

    def v(t, y):  # the PF-ODE drift f x - ½ g² s in diffusion time
        _, _, f, g = ref_vp(t)
        return f * y - 0.5 * g**2 * vp_score(y[None], jnp.full((1,), t))[0]

    @jax.jit
    def ode(t, y):
        return jnp.concatenate([v(t, y[:d]), jnp.trace(jax.jacfwd(v, argnums=1)(t, y[:d]))[None]])

    def ode_np(t, y):
        return np.asarray(ode(jnp.asarray(t), jnp.asarray(y)))

    init = np.concatenate([np.asarray(x), [0.0]])
    sol = solve_ivp(ode_np, (eps, T), init, rtol=tol, atol=tol, method="RK45")
    z, delta = sol.y[:d, -1], sol.y[d, -1]
    prior_logp = -d / 2.0 * np.log(2 * np.pi) - np.sum(z**2) / 2.0
    return prior_logp + delta


# ---------------------------------------------------------------------------------------------


def compare_processes() -> float:
    t = jnp.linspace(1e-3, T, 101)
    worst = 0.0
    for ref, ours in ((ref_vp, gpm_sde.vp()), (ref_subvp, gpm_sde.subvp()), (ref_ve, gpm_sde.ve())):
        a, s, f, g = ref(t)
        mine = (ours.alpha(t), ours.sigma(t), ours.drift_coeff(t), ours.diffusion(t))
        for r, m in zip((a, s, f, g), mine, strict=True):
            worst = max(worst, float(jnp.max(jnp.abs(r - m) / (1.0 + jnp.abs(r)))))
    return worst


def score_fn():
    return gpm_sde.scores.from_batched(vp_score, "x,t", (2,))


def compare_ancestral(n: int, N: int, eps: float = 1e-3, seed: int = 0) -> float:
    key = jr.key(seed)
    x_T = jr.normal(jr.fold_in(key, 7), (n, 2))
    noise_key = jr.split(key)[1]
    chain = gpm_sde.ddpm(n_steps=N, beta_1=B0 / N, beta_N=B1 / N)
    score = score_fn()

    def eps_model(step, x):  # 1-based step n ↔ score_sde's time t_{N−n}
        t = T - (N - step) * (T - eps) / (N - 1)
        return -jnp.sqrt(chain.one_minus_alpha_bar(step)) * score(t, x)

    ours = gpm_sde.samplers.ddpm_ancestral(chain, eps_model, key, x_init=x_T, variance="beta").x
    ref = ref_ancestral(x_T, N, eps, lambda i: jr.normal(jr.fold_in(noise_key, N - i), (n, 2)))
    return float(jnp.max(jnp.abs(ours - ref)))


def compare_pc(n: int, N: int, eps: float = 1e-3, snr: float = 0.16, seed: int = 0) -> float:
    key = jr.key(seed)
    x_T = jr.normal(jr.fold_in(key, 7), (n, 2))
    noise_key = jr.split(key)[1]
    t_grid = jnp.concatenate([jnp.linspace(T, eps, N), jnp.zeros(1)])
    ours = gpm_sde.samplers.predictor_corrector(
        gpm_sde.vp(), score_fn(), key, x_init=x_T, ts=T - t_grid, snr=snr
    ).x

    def keys(i):  # gpm_sde's per-step keys: (predictor, corrector)
        return jr.split(jr.fold_in(noise_key, i))

    ref = ref_pc(
        x_T,
        N,
        eps,
        snr,
        lambda i: jr.normal(keys(i)[0], (n, 2)),
        lambda i: jr.normal(jr.fold_in(keys(i)[1], 0), (n, 2)),
    )
    return float(jnp.max(jnp.abs(ours - ref)))


def compare_likelihood(n: int, seed: int = 0) -> float:
    x = M + jnp.sqrt(V) * jr.normal(jr.key(seed), (n, 2))
    ours = gpm_sde.log_likelihood(
        gpm_sde.vp(),
        score_fn(),
        x,
        eps=1e-5,
        rtol=1e-5,
        atol=1e-5,
        prior=gpm_sde.distributions.IsotropicNormal(1.0),
    )
    ref = np.array([ref_likelihood(xi) for xi in x])
    return float(np.max(np.abs(np.asarray(ours) - ref)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description="score_sde's SDEs, samplers, likelihood vs gpm_sde."
    )
    parser.add_argument("--fast", action="store_true", help="fewer points and steps")
    args = parser.parse_args()
    n, N, n_lik = (16, 50, 2) if args.fast else (1024, 1000, 20)
    proc = compare_processes()
    print(f"VP/sub-VP/VE alpha, sigma, f, g: max relative difference = {proc:.3e}")
    anc = compare_ancestral(n, N)
    print(f"ancestral VP sampler ({N} steps, same noise): max |difference| = {anc:.3e}")
    pc1, pc2 = compare_pc(n, N), compare_pc(n, 2 * N)
    print(
        f"PC sampler (same noise; discrete vs exact VP transition): max |difference| = "
        f"{pc1:.3e} at N = {N}, {pc2:.3e} at N = {2 * N} (shrinks with N)"
    )
    lik = compare_likelihood(n_lik)
    print(f"likelihood vs solve_ivp RK45 (rtol = atol = 1e-5): max |difference| = {lik:.3e} nats")
    ok = proc <= ROUNDOFF and anc <= ROUNDOFF and pc2 < 0.75 * pc1 and pc1 < 20.0 / N and lik < 1e-3
    print(
        f"score_sde ports: processes {proc:.1e}, ancestral {anc:.1e}, PC {pc1:.1e}, "
        f"likelihood {lik:.1e}: {'agree' if ok else 'DISAGREE'}"
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
