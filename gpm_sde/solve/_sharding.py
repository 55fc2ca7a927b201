r"""Place a particle cloud on several devices, split over the particle axis, with JAX's own
sharding (`jax.sharding.Mesh`, `NamedSharding`, `PartitionSpec`).

Nothing else is needed to run on many devices: [`simulate`][gpm_sde.simulate] is jitted, so
JAX's partitioner runs every pointwise drift where its particles live, draws each device's
part of the Brownian increments there (the draw is of the global shape, so its values do not
depend on the layout), and the mean-field
[`KernelScore`][gpm_sde.scores.KernelScore] gathers the cloud to every device while keeping
its queries sharded. See `docs/scaling.md`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_float_array


def shard_cloud(
    y: Float[ArrayLike, " n *event"],
    mesh: Mesh | None = None,
    axis: str | tuple[str, ...] = "particles",
) -> Float[Array, " n *event"]:
    r"""The cloud `y: (N, *event)` placed on the devices of `mesh`, split over its particle
    (leading) axis: `jax.device_put(y, NamedSharding(mesh, PartitionSpec(axis)))`.

    Each device holds $N / D$ consecutive particles, $D$ the size of the mesh axis (or axes)
    `axis`; the event axes are not split. Pass the result to
    [`simulate`][gpm_sde.simulate] (or any jitted function of the cloud): the output is
    sharded the same way and equals the single-device one to round-off.

    **Arguments:**

    - `y`: the cloud, `N` divisible by the number of devices along `axis`.
    - `mesh`: a `jax.sharding.Mesh`; `None` builds a one-axis mesh named `axis` over all of
      `jax.devices()` (with the mesh constructor's default axis type, `Auto`: GSPMD decides
      the partitioning of every intermediate). A mesh from `jax.make_mesh` (whose axes are
      `Explicit` by default in recent JAX) works too.
    - `axis`: the mesh axis name (or a tuple of names) to split the particles over.

    **Returns:** the cloud as a `jax.Array` with that `NamedSharding`.

    In a multi-process run (`jax.distributed.initialize()`), every process calls this with
    the whole cloud, the same on all of them; when each process holds only its own particles,
    build the global cloud with `jax.make_array_from_process_local_data(NamedSharding(mesh,
    PartitionSpec(axis)), local_y)` instead (see `docs/scaling.md`).
    """
    check_float_array("y", y)
    shape = jnp.shape(y)
    if len(shape) < 1 or shape[0] == 0:
        raise ValueError(
            f"`y` must be a non-empty particle cloud of shape (N, *event), got shape {shape}."
        )
    names = (axis,) if isinstance(axis, str) else axis
    if not isinstance(names, tuple) or not names or not all(isinstance(a, str) for a in names):
        raise TypeError(f"`axis` must be a mesh axis name or a tuple of names, got {axis!r}.")
    if mesh is None:
        if len(names) != 1:
            raise ValueError(
                f"`axis` must be one name when `mesh` is None (a one-axis mesh is built over "
                f"all devices), got {axis!r}; pass a `mesh` with these axes."
            )
        mesh = Mesh(np.asarray(jax.devices()), names)
    elif not isinstance(mesh, Mesh):
        raise TypeError(f"`mesh` must be a jax.sharding.Mesh or None, got {type(mesh).__name__}.")
    missing = [a for a in names if a not in mesh.axis_names]
    if missing:
        raise ValueError(
            f"`axis` {axis!r} is not an axis of `mesh` (its axes are {mesh.axis_names}); pass "
            f"one of those names."
        )
    n_shards = math.prod(mesh.shape[a] for a in names)
    if shape[0] % n_shards:
        raise ValueError(
            f"`y` has N = {shape[0]} particles, which does not split evenly over the "
            f"{n_shards} devices of mesh axis {axis!r}; use N divisible by {n_shards} (e.g. "
            f"{-(-shape[0] // n_shards) * n_shards})."
        )
    spec = PartitionSpec(names[0] if len(names) == 1 else names)
    return jax.device_put(y, NamedSharding(mesh, spec))
