"""One process of a multi-process JAX run on this machine, launched by
`tests/test_distributed.py` (and `benchmarks/scaling.py` reuses the problems below):

    XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu JAX_ENABLE_X64=1 \\
        python tests/distributed_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR MODE

Every process runs this same script (multi-controller JAX): `jax.distributed.initialize` on
127.0.0.1:PORT with CPU collectives over gloo, a global mesh over all processes' devices,
then MODE:

- `check`: (1) a reverse VP SDE with the exact (pointwise) mixture score and (2) DiffFlow
  with a `KernelScore` over the global cloud, the particle axis split over the global mesh;
  (3) three data-parallel `score_make_step` steps with the minibatch split over the mesh, a
  checkpoint of step 2 written by process 0 only and a resume from it by every process.
- `train`: `TRAIN_STEPS` data-parallel steps with a checkpoint every `EVERY` steps, resuming
  from the checkpoint if it exists; with `DIE_AT=k` in the environment, process 1 exits
  abruptly before step k (the failure test).

`HEARTBEAT=s` in the environment sets `heartbeat_timeout_seconds` (default 60 here; the
failure test uses 10).

Process 0 writes `result.npz` (arrays gathered from all processes); every process writes
`p{ID}.json` (its flags and timings).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

N = 64  # particles (16 per device on 2 processes x 2 devices)
BATCH = 32  # training minibatch (8 rows per device)
TRAIN_STEPS = 3
EVERY = 3  # `train` mode: checkpoint period
LONG_STEPS = 12  # `train` mode: total steps


def law():
    import gpm_sde

    return gpm_sde.GaussianMixture(
        jnp.array([0.3, 0.7]),
        jnp.array([[-1.5, 0.5], [1.0, -0.5]]),
        jnp.array([[[0.3, 0.1], [0.1, 0.2]], [[0.4, -0.1], [-0.1, 0.3]]]),
    )


def clouds() -> tuple[jax.Array, jax.Array]:
    """The two starting clouds, the same on every process: the VP prior N(0, I) and a wider
    Gaussian, drawn with NumPy from fixed seeds (no compilation)."""
    y_vp = np.random.default_rng(1).standard_normal((N, 2))
    y_flow = 2.0 * np.random.default_rng(2).standard_normal((N, 2))
    return jnp.asarray(y_vp), jnp.asarray(y_flow)


def sample_reverse(y0: jax.Array) -> jax.Array:
    """The reverse VP SDE with the exact mixture score (pointwise), 20 Euler-Maruyama steps."""
    import gpm_sde

    vp = gpm_sde.vp()
    sde = gpm_sde.reverse(vp, gpm_sde.MixtureMarginalScore(vp, law()))
    return gpm_sde.simulate(sde, y0, jr.key(3), t1=vp.T - 1e-3, steps=20).ys  # pyright: ignore[reportReturnType]


def sample_diffflow(y0: jax.Array, block: int | None = 16) -> jax.Array:
    """DiffFlow with the kernel score of the (global) cloud as its generated score."""
    import gpm_sde
    from gpm_sde.scores import AnnealedScore, KernelScore, SmoothedMixtureScore

    real = AnnealedScore(SmoothedMixtureScore(law()), lambda s: 0.5 * (1.0 - s) + 0.05)
    flow = gpm_sde.diffflow(real, KernelScore("scott", block=block), 1.0, 0.7)
    return gpm_sde.simulate(flow, y0, jr.key(4), t1=1.0, steps=10).ys  # pyright: ignore[reportReturnType]


def dataset() -> np.ndarray:
    """512 fixed training points: two Gaussian clusters (NumPy: no compilation)."""
    rng = np.random.default_rng(6)
    centre = np.where(rng.random((512, 1)) < 0.3, [[-1.5, 0.5]], [[1.0, -0.5]])
    return centre + 0.5 * rng.standard_normal((512, 2))


def training(data=None):
    """`(state, step)`: the initial `ScoreState` of a small score MLP and the jitted DSM step
    (`data`: what the step samples its minibatches from, default the `dataset()` array)."""
    import gpm_sde
    from gpm_sde.nn import EpsilonParam, ScoreMLP
    from gpm_sde.train import score_init, score_make_step

    vp = gpm_sde.vp()
    model = EpsilonParam(ScoreMLP(2, 16, 2, 8, key=jr.key(5)), vp.sigma)
    data = jnp.asarray(dataset()) if data is None else data
    state = score_init(model)
    return state, jax.jit(score_make_step(vp, data, batch_size=BATCH))


def leaves(state) -> list[np.ndarray]:
    import equinox as eqx

    arrays = jax.tree_util.tree_leaves(eqx.filter(state, eqx.is_array))
    return [np.asarray(_local(a)) for a in arrays]


def _local(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        return a.addressable_shards[0].data  # replicated: every shard is the whole array
    return a


def _gather(x: jax.Array) -> np.ndarray:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _initialize(pid: int, nproc: int, port: int) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    options: dict = {}
    params = inspect.signature(jax.distributed.initialize).parameters
    if "heartbeat_timeout_seconds" in params:  # a dead peer is noticed within this time
        options["heartbeat_timeout_seconds"] = int(os.environ.get("HEARTBEAT", "60"))
    if "initialization_timeout" in params:
        options["initialization_timeout"] = 60
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid, **options
    )


def check(out: Path, pid: int) -> dict:
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from gpm_sde.solve import shard_cloud
    from gpm_sde.train import load_checkpoint, replicate, save_checkpoint_once, sharded_sampler

    flags: dict = {}
    mesh = Mesh(np.asarray(jax.devices()), ("particles",))
    sharding = NamedSharding(mesh, PartitionSpec("particles"))
    y_vp, y_flow = clouds()
    # (1) each process contributes only its own rows of the cloud
    rows = N // jax.process_count()
    local = y_vp[pid * rows : (pid + 1) * rows]
    y0 = jax.make_array_from_process_local_data(sharding, np.asarray(local))
    t = time.perf_counter()
    ys = sample_reverse(y0)
    flags["reverse_sharded_devices"] = len(ys.sharding.device_set)
    ys_vp = _gather(ys)
    flags["time_reverse"] = time.perf_counter() - t
    # (2) every process holds the whole cloud; shard_cloud keeps its rows on its devices
    t = time.perf_counter()
    ys = sample_diffflow(shard_cloud(y_flow, mesh))
    flags["flow_sharded_devices"] = len(ys.sharding.device_set)
    ys_flow = _gather(ys)
    flags["time_diffflow"] = time.perf_counter() - t
    # (3) data-parallel training; a checkpoint by process 0; resume on every process
    t = time.perf_counter()
    state, step = training(sharded_sampler(jnp.asarray(dataset()), mesh, "particles"))
    state = replicate(state, mesh)
    flags["time_train_init"] = time.perf_counter() - t
    keys = jr.split(jr.key(7), TRAIN_STEPS)
    losses = []
    for k in range(TRAIN_STEPS):
        t_step = time.perf_counter()
        state, metrics = step(state, keys[k])
        losses.append(float(_local(metrics["loss"])))
        flags[f"time_step{k}"] = time.perf_counter() - t_step
        if k == 1:
            ckpt = out / "score.ckpt"
            written = save_checkpoint_once(ckpt, state, trainer="fit_score", step=k + 1)
            flags["wrote_checkpoint"] = written is not None
            restored, at = load_checkpoint(ckpt, state, trainer="fit_score")
            restored = replicate(restored, mesh)
    flags["time_train"] = time.perf_counter() - t
    final = leaves(state)
    t = time.perf_counter()
    resumed, _ = step(restored, keys[at])  # pyright: ignore[reportPossiblyUnboundVariable]
    flags["time_resumed_step"] = time.perf_counter() - t
    flags["resume_bitwise"] = all(
        np.array_equal(a, b) for a, b in zip(final, leaves(resumed), strict=True)
    )
    flags["resume_step"] = at  # pyright: ignore[reportPossiblyUnboundVariable]
    if pid == 0:
        arrays = {f"param{i}": a for i, a in enumerate(final)}
        arrays |= {"reverse": ys_vp, "diffflow": ys_flow, "loss": np.asarray(losses)}
        np.savez(out / "result.npz", **arrays)  # pyright: ignore[reportArgumentType]
    return flags


def train(out: Path, pid: int) -> dict:
    """`LONG_STEPS` data-parallel steps, a checkpoint by process 0 every `EVERY` steps,
    resumed (by every process) if the file exists."""
    from jax.sharding import Mesh

    from gpm_sde.train import load_checkpoint, replicate, save_checkpoint_once, sharded_sampler

    mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    state, step = training(sharded_sampler(jnp.asarray(dataset()), mesh))
    ckpt = out / "train.ckpt"
    start = 0
    if ckpt.exists():
        state, start = load_checkpoint(ckpt, state, trainer="fit_score")
    state = replicate(state, mesh)
    die_at = int(os.environ.get("DIE_AT", "-1"))
    keys = jr.split(jr.key(8), LONG_STEPS)
    for k in range(start, LONG_STEPS):
        if pid == 1 and k == die_at:
            print(f"process 1: exiting abruptly before step {k}", flush=True)
            os._exit(3)
        state, _ = step(state, keys[k])
        if (k + 1) % EVERY == 0:
            save_checkpoint_once(ckpt, state, trainer="fit_score", step=k + 1)
    if pid == 0:
        np.savez(out / "train.npz", *leaves(state))
    return {"resumed_from": start}


def main() -> None:
    pid, nproc, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    out, mode = Path(sys.argv[4]), sys.argv[5]
    start = time.perf_counter()
    _initialize(pid, nproc, port)
    flags: dict = {"devices": jax.device_count(), "local_devices": jax.local_device_count()}
    flags["time_init"] = time.perf_counter() - start
    try:
        flags |= check(out, pid) if mode == "check" else train(out, pid)
    except Exception as err:  # a peer that died: say so, and exit non-zero
        import traceback

        traceback.print_exc()
        print(f"process {pid}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    flags["time_total"] = time.perf_counter() - start
    (out / f"p{pid}.json").write_text(json.dumps(flags))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
