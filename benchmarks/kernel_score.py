"""The blocked mean-field kernel score against a naive all-pairs computation.

Workload: the score of the Gaussian KDE of a 2-D cloud at every particle,
∇log p̂(y_i) = (Σ_j softmax_j(−|y_i − y_j|²/2h²) y_j − y_i)/h², float32, fixed bandwidth.

- `KernelScore` (blocked): `block × block` tiles with a running log-sum-exp
  (`gpm_sde.scores.kernel_score_blocked`); memory O(N·d + block²).
- naive: one jitted function that forms the N × N distance and weight matrices. Its peak
  memory is a few N × N float32 matrices (N² · 4 B each: 4 MB at N = 1e3, 36 MB at 3e3,
  400 MB at 1e4), so it is run up to N = 1e4; at N = 1e5 one matrix would be 40 GB.

Both are jitted and compiled before timing; each is run `--repeats` times, alternating, and
the medians are compared (ratio = naive / blocked, > 1 means the blocked one is faster).

    python benchmarks/kernel_score.py
    python benchmarks/kernel_score.py --sizes 1000 3000 10000 --big 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import jax.random as jr

from gpm_sde.scores import KernelScore

H = 0.2


def naive_fn():
    @jax.jit
    def run(y):
        sq = jnp.sum((y[:, None, :] - y[None, :, :]) ** 2, axis=-1)
        w = jax.nn.softmax(-sq / (2 * H**2), axis=1)
        return (w @ y - y) / H**2

    return run


def blocked_fn(block: int):
    score = KernelScore(bandwidth=H, block=block)
    return jax.jit(lambda y: score(0.0, y))


def _time(fn, y) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(y))
    return time.perf_counter() - start


def bench(fns: dict, y, repeats: int) -> dict[str, float]:
    for fn in fns.values():
        jax.block_until_ready(fn(y))  # compile
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_time(fn, y))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="Blocked kernel score vs naive all-pairs.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--big", type=int, nargs="*", default=[100_000])
    parser.add_argument("--blocks", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(f"device: {jax.devices()[0].device_kind}, float32, d = 2, h = {H}")
    print(f"medians of {args.repeats} runs (the big size: of {max(1, args.repeats // 2)})\n")
    header = "| N | naive all-pairs (s) | naive N×N matrix (MB) |"
    header += "".join(f" blocked {b} (s) | naive / blocked {b} |" for b in args.blocks)
    print(header)
    print("|" + "---|" * (3 + 2 * len(args.blocks)))
    for n in args.sizes:
        y = jr.normal(jr.key(n), (n, 2), dtype=jnp.float32)
        fns = {"naive": naive_fn(), **{f"b{b}": blocked_fn(b) for b in args.blocks}}
        med = bench(fns, y, args.repeats)
        row = f"| {n:.0e} | {med['naive']:.4f} | {n * n * 4 / 1e6:.0f} |"
        for b in args.blocks:
            row += f" {med[f'b{b}']:.4f} | {med['naive'] / med[f'b{b}']:.2f} |"
        print(row)
    for n in args.big:
        y = jr.normal(jr.key(n), (n, 2), dtype=jnp.float32)
        fns = {f"b{b}": blocked_fn(b) for b in args.blocks}
        med = bench(fns, y, max(1, args.repeats // 2))
        row = f"| {n:.0e} | — (N×N alone: {n * n * 4 / 1e9:.0f} GB) | — |"
        for b in args.blocks:
            row += f" {med[f'b{b}']:.2f} | — |"
        print(row)


if __name__ == "__main__":
    main()
