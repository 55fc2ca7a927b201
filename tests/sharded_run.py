"""Run by `tests/test_sharding.py` in a subprocess with 4 forced host devices:

    XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_ENABLE_X64=1 python tests/sharded_run.py

Solves the same problems on an unsharded cloud and on the cloud split over 4 devices (an
`Auto` mesh from `shard_cloud` and an `Explicit` one from `jax.make_mesh`) and prints one JSON
object: the relative differences, whether the outputs are sharded over the 4 devices, and
the outcome of the non-finite check on a sharded cloud.
"""

from __future__ import annotations

import inspect
import json

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import gpm_sde
from gpm_sde.scores import AnnealedScore, KernelScore, SmoothedMixtureScore
from gpm_sde.sde import SDE, FunctionDrift, LinearDrift, ScalarDiffusion
from gpm_sde.solve import GridBrownianPath, NonFiniteSolutionError, shard_cloud

N = 256  # particles: 64 per device


def _law():
    return gpm_sde.GaussianMixture(
        jnp.array([0.3, 0.7]),
        jnp.array([[-1.5, 0.5], [1.0, -0.5]]),
        jnp.array([[[0.3, 0.1], [0.1, 0.2]], [[0.4, -0.1], [-0.1, 0.3]]]),
    )


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


def _spread(x, n: int) -> bool:
    """`x` (saves, N, d) lives on 4 devices with N/4 particles on each."""
    sharding = x.sharding
    return len(sharding.device_set) == 4 and sharding.shard_shape(x.shape)[1] == n // 4


def main() -> None:
    assert jax.device_count() == 4, jax.devices()
    meshes: dict[str, Mesh | None] = {"auto": None}
    if "axis_types" in inspect.signature(jax.make_mesh).parameters:
        meshes["explicit"] = jax.make_mesh(
            (4,), ("particles",), axis_types=(jax.sharding.AxisType.Explicit,)
        )
    law = _law()
    vp = gpm_sde.vp()
    reverse_vp = gpm_sde.reverse(vp, gpm_sde.MixtureMarginalScore(vp, law))
    y_vp = vp.prior.sample(jr.key(1), N, (2,))
    real = AnnealedScore(SmoothedMixtureScore(law), lambda s: 0.5 * (1.0 - s) + 0.05)
    flow = gpm_sde.diffflow(real, KernelScore("scott", block=16), 1.0, 0.7)
    y_flow = 2.0 * jr.normal(jr.key(2), (N, 2))

    ou = SDE(LinearDrift(-1.0), ScalarDiffusion(0.5))
    pid = diffrax.PIDController(rtol=1e-4, atol=1e-4)
    problems = {
        "reverse_vp": lambda y: (
            gpm_sde.simulate(reverse_vp, y, jr.key(3), t1=vp.T - 1e-3, steps=40).ys
        ),
        "diffflow_kernel": lambda y: gpm_sde.simulate(flow, y, jr.key(4), t1=1.0, steps=15).ys,
        "adaptive_ou": lambda y: (
            gpm_sde.simulate(
                ou, y, jr.key(7), t1=1.0, steps=10, solver=diffrax.Heun(), stepsize_controller=pid
            ).ys
        ),
    }
    clouds = {"reverse_vp": y_vp, "diffflow_kernel": y_flow, "adaptive_ou": y_flow}
    out: dict = {"jax": jax.__version__}
    for name, run in problems.items():
        single = run(clouds[name])
        for kind, mesh in meshes.items():
            if name == "adaptive_ou" and kind == "auto" and "explicit" in meshes:
                continue  # the explicit mesh is the case simulate converts: test that one
            sharded = run(shard_cloud(clouds[name], mesh))
            out[f"{name}/{kind}/rel"] = _rel(single, sharded)
            out[f"{name}/{kind}/sharded"] = _spread(sharded, N)

    # The Brownian increments: drawn for the global shape, so a sharded draw is bitwise the
    # unsharded one.
    path = GridBrownianPath(jax.ShapeDtypeStruct((N, 2), jnp.float64), jr.key(5), 0.0, 1.0, 10)
    mesh = Mesh(np.asarray(jax.devices()), ("particles",))
    sharding = NamedSharding(mesh, PartitionSpec("particles"))
    draw = jax.jit(lambda n: path.increment(n, 0.1).W, out_shardings=sharding)
    plain = jax.jit(lambda n: path.increment(n, 0.1).W)
    out["brownian_bitwise"] = all(
        bool(jnp.array_equal(draw(jnp.asarray(n)), plain(jnp.asarray(n)))) for n in (0, 7)
    )
    out["brownian_sharded"] = len(draw(jnp.asarray(0)).sharding.device_set) == 4

    # A blow-up on a sharded cloud is reported, not returned (and does not hang the devices).
    cubic = SDE(FunctionDrift(lambda s, y, args: y**3), ScalarDiffusion(0.1))
    try:
        gpm_sde.simulate(cubic, shard_cloud(jnp.full((N, 2), 3.0)), jr.key(6), t1=1.0, steps=10)
        out["nonfinite"] = "returned"
    except NonFiniteSolutionError as err:
        out["nonfinite"] = "raised" if "not finite" in str(err) else str(err)
    # Inside the user's jit over a sharded cloud no host callback can raise (it would leave
    # the other devices waiting): the solve returns, and `stats["first_nonfinite"]` says where.
    jitted = jax.jit(
        lambda y: gpm_sde.simulate(cubic, y, jr.key(6), t1=1.0, steps=10).stats["first_nonfinite"]
    )
    out["nonfinite_jit_flag"] = int(jitted(shard_cloud(jnp.full((N, 2), 3.0))))
    try:
        shard_cloud(jnp.zeros((N + 2, 2)))
        out["uneven"] = "accepted"
    except ValueError as err:
        out["uneven"] = "raised" if "does not split evenly" in str(err) else str(err)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
