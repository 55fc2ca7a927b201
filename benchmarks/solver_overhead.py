"""Overhead of `gpm_sde.simulate` against a hand-written `lax.scan` Euler–Maruyama loop.

Workload (issue 3): the reverse VP SDE of a 2-D, 3-component Gaussian mixture with its exact
score, N particles, 1000 Euler–Maruyama steps. The baseline does the same arithmetic by hand:
closed-form β(t), the same vmapped mixture score, one `fold_in(key, n)` normal draw per step.
Both are jitted and compiled before timing; each is timed `--repeats` times, alternating, and
the medians are compared. Reference rows show `diffrax.diffeqsolve` with an
`UnsafeBrownianPath` and with a `VirtualBrownianTree` on the same grid.

    python benchmarks/solver_overhead.py                 # CPU: N = 1e4, 1e5
    python benchmarks/solver_overhead.py --sizes 100000 1000000   # GPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr

import gpm_sde

STEPS = 1000
EPS = 1e-3


def make_problem():
    law = gpm_sde.GaussianMixture(
        jnp.array([0.2, 0.5, 0.3]),
        jnp.array([[-2.0, 0.5], [1.5, -1.0], [0.5, 2.5]]),
        jnp.array(
            [[[0.3, 0.1], [0.1, 0.2]], [[0.5, -0.2], [-0.2, 0.4]], [[0.15, 0.0], [0.0, 0.6]]]
        ),
    )
    process = gpm_sde.vp()
    score = gpm_sde.MixtureMarginalScore(process, law)
    return process, score


def baseline_fn(process, score):
    """Hand-written Euler–Maruyama for dY = [β/2 Y + β ∇log p_{1-s}(Y)] ds + √β dW."""
    t1 = process.T - EPS
    dt = t1 / STEPS
    bmin, bmax = process.beta_min, process.beta_max

    @jax.jit
    def run(y0, key):
        def body(y, n):
            s = n * dt
            beta = bmin + (process.T - s) * (bmax - bmin)
            drift = 0.5 * beta * y + beta * jax.vmap(score, in_axes=(None, 0))(process.T - s, y)
            dw = jnp.sqrt(dt) * jr.normal(jr.fold_in(key, n), y.shape, y.dtype)
            return y + drift * dt + jnp.sqrt(beta) * dw, None

        return jax.lax.scan(body, y0, jnp.arange(STEPS))[0]

    return run


def simulate_fn(process, score):
    sde = gpm_sde.reverse(process, score)

    def run(y0, key):
        return gpm_sde.simulate(sde, y0, key, t1=process.T - EPS, steps=STEPS).ys

    return run


def diffeqsolve_fn(process, score, brownian: str):
    sde = gpm_sde.reverse(process, score)
    t1 = process.T - EPS

    @jax.jit
    def run(y0, key):
        shape = jax.ShapeDtypeStruct(y0.shape, y0.dtype)
        if brownian == "unsafe":
            path = diffrax.UnsafeBrownianPath(shape=shape, key=key)
            adjoint = diffrax.ForwardMode()
        else:
            path = diffrax.VirtualBrownianTree(0.0, t1, tol=t1 / STEPS / 2, shape=shape, key=key)
            adjoint = diffrax.RecursiveCheckpointAdjoint()
        return diffrax.diffeqsolve(
            sde.terms(path),
            diffrax.Euler(),
            0.0,
            t1,
            dt0=t1 / STEPS,
            y0=y0,
            saveat=diffrax.SaveAt(t1=True),
            max_steps=STEPS + 1,
            adjoint=adjoint,
        ).ys

    return run


def time_it(fn, y0, key) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(y0, key))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-reference", action="store_true", help="skip the diffeqsolve rows")
    opts = parser.parse_args()

    process, score = make_problem()
    print(
        f"device: {jax.devices()[0].platform} ({jax.devices()[0].device_kind}), "
        f"jax {jax.__version__}, diffrax {diffrax.__version__}, {STEPS} steps, float32"
    )
    print(
        "| N | baseline scan EM (s) | simulate (s) | ratio | diffeqsolve+Unsafe ratio "
        "| diffeqsolve+VBT ratio |"
    )
    print("|---|---|---|---|---|---|")
    for n in opts.sizes:
        y0 = jr.normal(jr.key(0), (n, 2))
        key = jr.key(1)
        fns = {"baseline": baseline_fn(process, score), "simulate": simulate_fn(process, score)}
        if not opts.no_reference:
            fns["unsafe"] = diffeqsolve_fn(process, score, "unsafe")
            fns["vbt"] = diffeqsolve_fn(process, score, "vbt")
        for fn in fns.values():
            jax.block_until_ready(fn(y0, key))  # compile
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(opts.repeats):
            for name, fn in fns.items():
                if name == "vbt" and len(times["vbt"]) >= 3:
                    continue  # slow reference: three runs suffice for its median
                times[name].append(time_it(fn, y0, key))
        med = {name: statistics.median(ts) for name, ts in times.items()}
        ref = med["baseline"]
        row = [f"{n:.0e}", f"{ref:.3f}", f"{med['simulate']:.3f}", f"{med['simulate'] / ref:.3f}"]
        for name in ("unsafe", "vbt"):
            row.append(f"{med[name] / ref:.2f}" if name in med else "-")
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
