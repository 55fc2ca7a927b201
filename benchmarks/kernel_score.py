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

Throughput against the device's limit (`--sweep`): the blocked score at `--sweep-n`
particles for each tile size of `--sweep-blocks`, in Gpairs/s (N² pairs per call), next to
two ceilings measured in the same run: the matmul peak (a jitted 2048 × 2048 float32 matmul,
in GFLOP/s) divided by the multiply-adds a pair costs (the two `block × d` products, 4d
flops), and the rate of the pair's non-matmul work alone (the norms, the mask, the max, one
`exp`, the sum), the faster of cache-sized tiles under a scan and one large tile generated
inside a fusion. The second
is the limit for small `d`; the `% of limit` column is against the smaller of the two.

    python benchmarks/kernel_score.py
    python benchmarks/kernel_score.py --sizes 1000 3000 10000 --big 100000 --repeats 5
    python benchmarks/kernel_score.py --sizes --big --sweep --sweep-n 30000 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import jax.random as jr

from gpm_sde.scores import KernelScore, default_block

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


def matmul_peak(repeats: int, size: int = 2048) -> float:
    """FLOP/s of a jitted float32 `size × size` matmul (median of `repeats`)."""
    a = jr.normal(jr.key(0), (size, size), dtype=jnp.float32)
    return 2 * size**3 / _median_time(jax.jit(lambda a: a @ a), a, repeats=repeats)


def _median_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _pair_work(sq, ok):
    """A pair's non-matmul work: clamp, scale, mask, row max, one `exp`, row sum."""
    logits = jnp.where(ok, -jnp.maximum(sq, 0.0) * 12.5, -jnp.inf)
    m = jnp.max(logits, axis=1)
    return jnp.sum(jnp.exp(logits - m[:, None]), axis=1)


def elementwise_pair_rate(repeats: int, block: int = 1024, tiles: int = 16) -> float:
    """Pairs/s of the kernel score's non-matmul work alone (the squared distance from the
    norms and a given dot product, then `_pair_work`), the faster of two layouts: `tiles`
    `block × block` tiles under `lax.scan` (cache-sized tiles read from memory, as the
    blocked score runs on a CPU) and one `4 block × 16 block` tile generated inside a single
    fusion (no memory traffic, as a GPU runs it best)."""
    q = jr.normal(jr.key(1), (block,), dtype=jnp.float32)
    dots = jr.normal(jr.key(2), (tiles, block, block), dtype=jnp.float32)
    ok = jnp.arange(block)[None, :] < block - 1

    @jax.jit
    def scanned(dots):
        qq = q[:, None] ** 2

        def tile(carry, dot):
            return carry + _pair_work(qq + qq.T - 2.0 * dot, ok), None

        return jax.lax.scan(tile, jnp.zeros(block, jnp.float32), dots)[0]

    rows, cols = 4 * block, 16 * block
    qr = jr.normal(jr.key(3), (rows,), dtype=jnp.float32)
    pc = jr.normal(jr.key(4), (cols,), dtype=jnp.float32)

    @jax.jit
    def fused(qr, pc):
        sq = qr[:, None] ** 2 + pc[None, :] ** 2 - 2.0 * qr[:, None] * pc[None, :]
        return _pair_work(sq, jnp.arange(cols)[None, :] < cols - 1)

    by_scan = tiles * block * block / _median_time(scanned, dots, repeats=repeats)
    by_fusion = rows * cols / _median_time(fused, qr, pc, repeats=repeats)
    return max(by_scan, by_fusion)


def sweep(n: int, blocks: list[int], repeats: int) -> None:
    """Gpairs/s of the blocked score at `n` particles for each tile size, against the limits."""
    d = 2
    peak = matmul_peak(repeats)
    by_matmul = peak / (4 * d)
    by_elementwise = elementwise_pair_rate(repeats)
    limit = min(by_matmul, by_elementwise)
    print(
        f"matmul peak: {peak / 1e9:.1f} GFLOP/s -> {by_matmul / 1e9:.2f} Gpairs/s at {4 * d} flops"
    )
    print(f"elementwise work alone (one exp per pair): {by_elementwise / 1e9:.2f} Gpairs/s")
    print(f"default block for N = {n} on {jax.default_backend()}: {default_block(n)}\n")
    y = jr.normal(jr.key(n), (n, d), dtype=jnp.float32)
    fns = {str(b): blocked_fn(b) for b in blocks}
    med = {int(b): t for b, t in bench(fns, y, repeats).items()}
    print(f"| N | block | time (s) | Gpairs/s | % of limit ({limit / 1e9:.2f} Gpairs/s) |")
    print("|---|---|---|---|---|")
    for b in blocks:
        rate = n * n / med[b]
        print(f"| {n:.0e} | {b} | {med[b]:.3f} | {rate / 1e9:.3f} | {100 * rate / limit:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description="Blocked kernel score vs naive all-pairs.")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 3000, 10000])
    parser.add_argument("--big", type=int, nargs="*", default=[100_000])
    parser.add_argument("--blocks", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep", action="store_true", help="Gpairs/s per tile size")
    parser.add_argument("--sweep-n", type=int, default=30_000)
    parser.add_argument("--sweep-blocks", type=int, nargs="+", default=[256, 512, 1024, 2048])
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
    if args.sweep:
        print()
        sweep(args.sweep_n, args.sweep_blocks, args.repeats)


if __name__ == "__main__":
    main()
