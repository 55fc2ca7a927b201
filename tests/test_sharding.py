"""Many devices through JAX's own sharding: a cloud split over the particle axis of a 4-device
mesh (forced host devices, in a subprocess, since the device count is fixed when JAX starts)
gives the single-device result, stays sharded, draws the same Brownian increments, and
reports a blow-up.

Tolerance: the sharded and the single-device programs do the same arithmetic per particle,
except for reductions over the whole cloud (the Scott bandwidth of the kernel score) and
XLA's fusion choices, which may reorder float64 sums: differences are round-off, ~1e-15
relative over these short solves. We assert 1e-12 (the issue's bound).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from gpm_sde.solve import shard_cloud

SCRIPT = pathlib.Path(__file__).with_name("sharded_run.py")
RTOL = 1e-12


@pytest.fixture(scope="module")
def sharded_results() -> dict:
    env = os.environ | {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_ENABLE_X64": "1",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("problem", ["reverse_vp", "diffflow_kernel", "adaptive_ou"])
def test_sharded_equals_single_device(sharded_results, problem):
    """(a) reverse VP SDE with the exact mixture score, (b) DiffFlow with the mean-field
    KernelScore as generated score, (c) an adaptive solve: sharded == unsharded to 1e-12
    relative, and the output is split over the 4 devices."""
    runs = [k for k in sharded_results if k.startswith(problem + "/") and k.endswith("/rel")]
    assert runs, sharded_results
    for run in runs:
        assert sharded_results[run] <= RTOL, (run, sharded_results[run])
        assert sharded_results[run.replace("/rel", "/sharded")], run


def test_sharded_brownian_increments_are_bitwise_the_same(sharded_results):
    assert sharded_results["brownian_bitwise"]
    assert sharded_results["brownian_sharded"]


def test_sharded_blow_up_is_reported(sharded_results):
    """Eagerly: `NonFiniteSolutionError`. Inside a jit over the sharded cloud: no hang, and
    `sol.stats["first_nonfinite"]` (1 + the index of the first non-finite save) is set."""
    assert sharded_results["nonfinite"] == "raised"
    assert sharded_results["nonfinite_jit_flag"] == 1


def test_shard_cloud_checks(sharded_results):
    assert sharded_results["uneven"] == "raised"
    y = jnp.zeros((8, 2))
    out = shard_cloud(y)
    assert out.shape == y.shape and len(out.sharding.device_set) == jax.device_count()
    with pytest.raises(ValueError, match="axis"):
        shard_cloud(y, jax.sharding.Mesh(jax.devices(), ("x",)), axis="particles")
    with pytest.raises(TypeError, match="y"):
        shard_cloud(jnp.zeros((8, 2), dtype=jnp.int32))
    with pytest.raises(ValueError, match="y"):
        shard_cloud(jnp.zeros((0, 2)))
    with pytest.raises(TypeError, match="mesh"):
        shard_cloud(y, "mesh")  # pyright: ignore[reportArgumentType]
