"""Throughput across local processes: the kernel score of a global cloud and a sampling run,
on 1, 2 and 4 processes of JAX's multi-controller runtime on this machine (CPU collectives
over gloo, one CPU device per process, a global mesh with one device per process), as
ratios to one process, so that the cost of the communication is visible.

Throughput per second of wall time (process 0's medians) and per CPU-second (summed over the
processes: what the work costs, whatever share of the cores the run got).

- kernel score: `KernelScore(h)` on the global cloud of `--kernel-n` points (float32,
  d = 2), the queries split over the processes and the points all-gathered to each: Gpairs/s
  = N² / time.
- sampling: `simulate` of the reverse VP SDE with the exact mixture score (pointwise: no
  communication inside a step) on `--sample-n` particles, `--steps` Euler-Maruyama steps:
  particle-steps/s.

Strong scaling: the global problem is the same for every process count. The processes are
not pinned to cores: on a machine with fewer cores than processes they share them, and a
single process already uses every core through XLA's intra-op threads, so on a small
machine the ratios measure the cost of the communication rather than a speed-up.

    python benchmarks/scaling.py
    python benchmarks/scaling.py --processes 1 2 4 --kernel-n 16384 --sample-n 65536 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker(pid: int, nproc: int, port: int, args: argparse.Namespace) -> None:
    """One process: initialise, time both workloads on the global mesh, print JSON (pid 0)."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid
    )
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import gpm_sde
    from gpm_sde.scores import KernelScore

    mesh = Mesh(np.asarray(jax.devices()), ("particles",))
    sharding = NamedSharding(mesh, PartitionSpec("particles"))

    def local_rows(y: np.ndarray) -> jax.Array:
        rows = y.shape[0] // nproc
        return jax.make_array_from_process_local_data(sharding, y[pid * rows : (pid + 1) * rows])

    def median_time(fn, x) -> tuple[float, float]:
        """Median wall time of a call, and this process's CPU seconds per call."""
        jax.block_until_ready(fn(x))  # compile
        times = []
        cpu = time.process_time()
        for _ in range(args.repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(x))
            times.append(time.perf_counter() - start)
        return statistics.median(times), (time.process_time() - cpu) / args.repeats

    rng = np.random.default_rng(0)
    y = local_rows(rng.standard_normal((args.kernel_n, 2)).astype(np.float32))
    score = KernelScore(0.2)
    kernel = jax.jit(lambda y: score(0.0, y))
    t_kernel = median_time(kernel, y)

    means = jnp.array([[-2.0, 0.0], [2.0, 0.0]])
    law = gpm_sde.GaussianMixture(jnp.array([0.5, 0.5]), means, jnp.stack([0.2 * jnp.eye(2)] * 2))
    vp = gpm_sde.vp()
    sde = gpm_sde.reverse(vp, gpm_sde.MixtureMarginalScore(vp, law))
    y0 = local_rows(rng.standard_normal((args.sample_n, 2)).astype(np.float32))
    sample = jax.jit(
        lambda y: gpm_sde.simulate(sde, y, jr.key(1), t1=vp.T - 1e-3, steps=args.steps).ys
    )
    t_sample = median_time(sample, y0)
    print(json.dumps({"processes": nproc, "kernel": t_kernel, "sample": t_sample}), flush=True)
    jax.distributed.shutdown()


def run(nproc: int, args: argparse.Namespace) -> dict:
    """Launch `nproc` processes of this script (one CPU device each); process 0's timings."""
    env = os.environ | {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        "JAX_PLATFORMS": "cpu",
    }
    port = _free_port()
    opts = ["--kernel-n", str(args.kernel_n), "--sample-n", str(args.sample_n)]
    opts += ["--steps", str(args.steps), "--repeats", str(args.repeats)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(pid), str(nproc), str(port), *opts],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for pid in range(nproc)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=args.timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a process of the {nproc}-process run failed: {outs}")
    rows = [json.loads(out.strip().splitlines()[-1]) for out in outs]
    return {  # process 0's wall times; CPU seconds summed over the processes
        "processes": nproc,
        **{f"{k}_s": rows[0][k][0] for k in ("kernel", "sample")},
        **{f"{k}_cpu": sum(r[k][1] for r in rows) for k in ("kernel", "sample")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Throughput on 1, 2, 4 local processes.")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--kernel-n", type=int, default=16384)
    parser.add_argument("--sample-n", type=int, default=65536)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--worker", type=int, nargs=3, metavar=("PID", "NPROC", "PORT"))
    args = parser.parse_args()
    if args.worker:
        pid, nproc, port = args.worker
        worker(pid, nproc, port, args)
        return
    print(
        f"CPU cores: {os.cpu_count()}; kernel score N = {args.kernel_n} (float32, d = 2); "
        f"sampling N = {args.sample_n}, {args.steps} steps; medians of {args.repeats}\n"
    )
    rows = [run(p, args) for p in args.processes]
    base = rows[0]
    print(
        "| processes | kernel score: Gpairs/s | ratio to 1 | Gpairs per CPU-s | ratio to 1 | "
        "sampling: Mparticle-steps/s | ratio to 1 | per CPU-s | ratio to 1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    pairs, steps = args.kernel_n**2 / 1e9, args.sample_n * args.steps / 1e6
    for r in rows:
        cells = [str(r["processes"])]
        for work, k in ((pairs, "kernel"), (steps, "sample")):
            for suffix in ("_s", "_cpu"):
                cells += [f"{work / r[k + suffix]:.3g}", f"{base[k + suffix] / r[k + suffix]:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
