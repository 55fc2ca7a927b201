r"""Quality per network evaluation (NFE) of the few-step samplers, exactly and on the five
Gaussians, and their wall time per NFE against hand-written `lax.scan` loops.

    python benchmarks/quality_per_nfe.py            # everything (a few minutes on 2 CPU cores)
    python benchmarks/quality_per_nfe.py --fast     # smaller clouds and fewer repeats
    python benchmarks/quality_per_nfe.py --plot docs/assets/few-step-samplers.png

1. **Exact W₂ per NFE.** VP process, Gaussian data $\mathcal{N}(m, C)$ in 2-D, exact score:
   each sampler's output law is Gaussian and computed exactly through its own steps
   (`verify.sampler_gaussian_law`, float64), from the exact law at $T$, on the default grids
   (Karras $\rho = 7$, $\epsilon = 10^{-3}$, then a last step to $t = 0$). $W_2$ to the data
   law at NFE budgets 5, 10, 20, 50, 100, 1000 (each sampler takes the most steps within the
   budget). Baseline: Euler–Maruyama of the reverse SDE on the uniform grid to $\epsilon$
   (`samplers.reverse_sde_sample`'s scheme), its exact law by `verify.euler_maruyama_moments`.
2. **Five Gaussians, exact score.** MMD (the square root of the biased MMD², median-heuristic
   bandwidths of held-out data, as `benchmarks/five_gaussians.py`) of `N` samples to held-out
   data, mean over `R` keys, and mode weights, against NFE; the *held-out floor* is the 95%
   quantile of the MMD between two independent data samples of the same size (20 pairs).
   "NFE needed" is the smallest NFE on the search grid (NFE 3..100; $2N - 1$ for the
   two-evaluation samplers) whose mean MMD is within that floor;
   the 1000-step Euler–Maruyama reference is printed against the same floor.
3. **Wall time per NFE.** Each deterministic sampler's compiled run (`StepPlan.run`) and its
   full public call against a hand-written, jitted `lax.scan` of the same update with the
   same per-step coefficients (median of repeats, alternating); ratio ≤ 1.10 is the goal.

Digits with a trained model (the NFE for a digits-FD within 10% of 1000-step Euler–Maruyama)
are measured by `benchmarks/digits_nfe.py` (float32; this script switches on float64).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)  # the exact laws are compared at 1e-6 and below

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402

import gpm_sde  # noqa: E402
from gpm_sde import data, metrics, samplers, verify  # noqa: E402
from gpm_sde.scores import MixtureMarginalScore, on_cloud  # noqa: E402

BUDGETS = (5, 10, 20, 50, 100, 1000)
SEARCH = (3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 30, 40, 50, 70, 100)
MEAN = jnp.array([1.0, -0.5])
COV = jnp.array([[0.5, 0.2], [0.2, 0.3]])
# name -> (sampler, options, evaluations per step); the last step to 0 saves one for 2-eval ones
SAMPLERS = {
    "EDM Heun": (samplers.edm_heun, {}, 2),
    "EDM stochastic (S_churn=10)": (samplers.edm_stochastic, {"s_churn": 10.0}, 2),
    "DPM-Solver++(2M)": (samplers.dpm_solver_pp_2m, {}, 1),
    "DPM-Solver++(2S)": (samplers.dpm_solver_pp_2s, {}, 2),
    "DDIM (euler_ancestral eta=0)": (samplers.euler_ancestral, {"eta": 0.0}, 1),
    "Euler ancestral (eta=1)": (samplers.euler_ancestral, {"eta": 1.0}, 1),
}
EM = "Euler–Maruyama (reverse SDE, uniform)"


def steps_for(nfe: int, per_step: int) -> int:
    """The most steps whose NFE ($2N - 1$ or $N$) is within `nfe`."""
    return max(1, (nfe + 1) // 2) if per_step == 2 else nfe


def em_exact_law(process, law, steps, start):
    """Exact moments of Euler–Maruyama of the reverse SDE with the affine exact score."""
    eps = 1e-3
    s = np.linspace(0.0, process.T - eps, steps + 1)
    t = jnp.asarray(process.T - s[:-1])
    f, g2 = process.drift_coeff(t), process.diffusion_squared(t)
    a, var = process.alpha(t), process.variance(t)
    cov_t = a[:, None, None] ** 2 * law.covs[0] + var[:, None, None] * jnp.eye(2)
    prec = jnp.linalg.inv(cov_t)
    drift_matrix = -f[:, None, None] * jnp.eye(2) - g2[:, None, None] * prec
    drift_offset = g2[:, None] * jnp.einsum("nij,j->ni", prec, law.means[0]) * a[:, None]
    means, covs = verify.euler_maruyama_moments(
        jnp.diff(jnp.asarray(s)), drift_matrix, drift_offset, g2, start.means[0], start.covs[0]
    )
    return means[-1], covs[-1]


def exact_table() -> dict[str, list[tuple[int, float]]]:
    process = gpm_sde.vp()
    law = gpm_sde.GaussianMixture(jnp.ones(1), MEAN[None], COV[None])
    score = MixtureMarginalScore(process, law)
    start = process.marginal(law, process.T)
    table: dict[str, list[tuple[int, float]]] = {}
    for name, (sampler, options, per_step) in SAMPLERS.items():
        row = []
        for budget in BUDGETS:
            plan = samplers.sampler_plan(
                sampler, process, score, steps=steps_for(budget, per_step), **options
            )
            m, c = verify.sampler_gaussian_law(plan, start.means[0], start.covs[0])
            row.append((plan.nfe, float(metrics.gaussian_w2(m, c, MEAN, COV))))
        table[name] = row
    table[EM] = [
        (b, float(metrics.gaussian_w2(*em_exact_law(process, law, b, start), MEAN, COV)))
        for b in BUDGETS
    ]
    return table


def five_gaussians(n: int, repeats: int, seed: int):
    law = data.five_gaussians()
    process = gpm_sde.vp()
    score = MixtureMarginalScore(process, law)
    key = jr.key(seed)
    held = law.sample(jr.fold_in(key, 1), n)
    bandwidths = metrics.median_heuristic_bandwidths(held, law.sample(jr.fold_in(key, 2), n))

    def mmd(x):
        return float(jnp.sqrt(metrics.mmd(x, held, bandwidths, biased=True)))

    floor = [mmd(law.sample(jr.fold_in(key, 100 + i), n)) for i in range(20)]
    threshold = float(np.quantile(floor, 0.95))

    def quality(run):
        values, weights = [], []
        for r in range(repeats):
            x = run(jr.fold_in(key, 1000 + r))
            values.append(mmd(x))
            weights.append(np.asarray(metrics.mode_weights(x, law.means)))
        return float(np.mean(values)), np.mean(weights, axis=0)

    em_mmd, em_w = quality(
        lambda k: samplers.reverse_sde_sample(process, score, k, n, (2,), steps=1000).x
    )
    results = {}
    for name, (sampler, options, per_step) in SAMPLERS.items():
        curve = {}
        for steps in sorted({steps_for(k, per_step) for k in SEARCH}):
            nfe = 2 * steps - 1 if per_step == 2 else steps
            curve[nfe] = quality(
                lambda k, s=steps: sampler(process, score, k, n, (2,), steps=s, **options).x
            )
        needed = next((k for k, (v, _) in sorted(curve.items()) if v <= threshold), None)
        results[name] = (curve, needed)
    return threshold, float(np.median(floor)), (em_mmd, em_w), results


def hand_written(process, score, plan, kind):
    """The same update as the sampler, written directly as a jitted `lax.scan` over the plan's
    per-step coefficients (no StepPlan machinery)."""
    p = {k: jnp.asarray(v) for k, v in plan.params.items()}
    scale_in, scale_out = plan.scale_in, plan.scale_out

    def den(t, a, r, x):
        return x + (r**2 * a) * on_cloud(score, t, a * x)

    if kind == "heun":

        @jax.jit
        def run(x):
            def body(x, q):
                d = (x - den(q["t_hat"], q["a_hat"], q["r_hat"], x)) / q["r_hat"]
                dt = q["r_next"] - q["r_hat"]
                x2 = x + dt * d
                d2 = (x2 - den(q["t_next"], q["a_next"], q["r_next"], x2)) / q["r_next"]
                return x + dt * 0.5 * (d + d2), None

            head = {k: v[:-1] for k, v in p.items()}
            x, _ = jax.lax.scan(body, x * scale_in, head)
            q = {k: v[-1] for k, v in p.items()}
            x = den(q["t_hat"], q["a_hat"], q["r_hat"], x)  # the last Euler step to 0 is D
            return x * scale_out

    elif kind == "2m":

        @jax.jit
        def run(x):
            def body(carry, q):
                x, d_prev = carry
                d = den(q["t"], q["a"], q["r"], x)
                return (q["cx"] * x + q["cd"] * (q["w1"] * d + q["w0"] * d_prev), d), None

            x = x * scale_in
            (x, _), _ = jax.lax.scan(body, (x, jnp.zeros_like(x)), p)
            return x * scale_out

    else:

        @jax.jit
        def run(x):
            def body(x, q):
                d = den(q["t"], q["a"], q["r"], x)
                return x + (q["r_down"] - q["r"]) * (x - d) / q["r"], None

            x, _ = jax.lax.scan(body, x * scale_in, p)
            return x * scale_out

    return run


def timings(n: int, steps: int, repeats: int):
    law = data.five_gaussians()
    process = gpm_sde.vp()
    score = MixtureMarginalScore(process, law)
    x0 = process.prior.sample(jr.key(0), n, (2,))
    rows = []
    table: list[tuple[str, str, Any, dict[str, Any]]] = [
        ("EDM Heun", "heun", samplers.edm_heun, {}),
        ("DPM-Solver++(2M)", "2m", samplers.dpm_solver_pp_2m, {}),
        ("DDIM (euler_ancestral eta=0)", "ddim", samplers.euler_ancestral, {"eta": 0.0}),
    ]
    for name, kind, sampler, options in table:
        plan = samplers.sampler_plan(sampler, process, score, steps=steps, **options)
        base = hand_written(process, score, plan, kind)
        np.testing.assert_allclose(plan.run(x0), base(x0), rtol=1e-9, atol=1e-9)

        def full(sampler=sampler, options=options):
            return sampler(process, score, None, x_init=x0, steps=steps, **options).x

        fns = {"plan": lambda plan=plan: plan.run(x0), "hand": lambda base=base: base(x0)}
        fns["call"] = full
        times: dict[str, list[float]] = {k: [] for k in fns}
        for f in fns.values():
            jax.block_until_ready(f())
        for _ in range(repeats):
            for k, f in fns.items():
                start = time.perf_counter()
                jax.block_until_ready(f())
                times[k].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append((name, plan.nfe, med))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    n, repeats = (1000, 2) if args.fast else (2000, 3)

    print("## Exact W2 to the data law (VP, Gaussian data, exact score)\n")
    table = exact_table()
    print("| sampler | " + " | ".join(f"NFE ≤ {b}" for b in BUDGETS) + " |")
    print("|---|" + "---|" * len(BUDGETS))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{w:.2e} ({k})" for k, w in row) + " |")
    print("\n(in parentheses: the NFE actually used)\n", flush=True)

    print(f"## Five Gaussians, exact score: MMD of {n} samples (mean of {repeats} keys)\n")
    threshold, floor_median, (em_mmd, em_w), results = five_gaussians(n, repeats, args.seed)
    print(f"held-out floor: median {floor_median:.4f}, 95% quantile {threshold:.4f}")
    print(f"Euler–Maruyama 1000 steps: MMD {em_mmd:.4f}, mode weights {np.round(em_w, 3)}\n")
    print("| sampler | NFE needed | " + " | ".join(f"MMD @ {k}" for k in (5, 10, 20, 50)) + " |")
    print("|---|---|" + "---|" * 4)
    for name, (curve, needed) in results.items():

        def cell(k, curve=curve):
            near = min(curve, key=lambda j: abs(j - k))
            return f"{curve[near][0]:.4f}" + ("" if near == k else f" ({near})")

        cells = " | ".join(cell(k) for k in (5, 10, 20, 50))
        print(f"| {name} | {needed if needed else '> 100'} | {cells} |")
    print("\nmode weights at NFE ≈ 10:")
    for name, (curve, _) in results.items():
        near = min(curve, key=lambda j: abs(j - 10))
        print(f"  {name:32s} {np.round(curve[near][1], 3)}")
    print(flush=True)

    print("## Wall time per NFE (VP, five Gaussians, hand-written lax.scan baseline)\n")
    rows = timings(20000 if not args.fast else 5000, 100, 11 if not args.fast else 3)
    head = "| sampler | NFE | plan.run / NFE | full call / NFE | hand-written / NFE |"
    print(head + " ratio run | ratio call |")
    print("|---|---|---|---|---|---|---|")
    for name, nfe, med in rows:
        per = {k: 1e6 * v / nfe for k, v in med.items()}
        print(
            f"| {name} | {nfe} | {per['plan']:.0f} µs | {per['call']:.0f} µs | "
            f"{per['hand']:.0f} µs | {med['plan'] / med['hand']:.3f} | "
            f"{med['call'] / med['hand']:.3f} |"
        )
    if args.plot is not None:
        _plot(args.plot, table, results, threshold)
    return 0


def _plot(path: Path, table, results, threshold) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for j, (name, row) in enumerate(table.items()):
        nfe, w2 = zip(*row, strict=True)
        axes[0].loglog(nfe, w2, "o-", color=f"C{j}", label=name)
    axes[0].set(xlabel="NFE", ylabel="exact W₂ to the data law", title="Gaussian data (exact)")
    axes[0].legend(fontsize=7)
    for j, (name, (curve, _)) in enumerate(results.items()):
        k = sorted(curve)
        axes[1].semilogx(k, [curve[i][0] for i in k], "o-", color=f"C{j}", label=name)
    axes[1].axhline(threshold, color="k", ls="--", lw=1, label="held-out floor (95%)")
    axes[1].set(xlabel="NFE", ylabel="MMD to held-out data", title="Five Gaussians")
    axes[1].legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
