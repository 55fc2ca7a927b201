r"""Data-parallel training across devices and processes (JAX's multi-controller runtime,
`jax.distributed`): a sampler whose minibatch is split over the devices, and a checkpoint
written once, by process 0.

Every trainer's step is a pure `step(state, key)` that draws its minibatch with `key`. Give
it the sampler of [`sharded_sampler`][gpm_sde.train.sharded_sampler] as its `data` and
`jax.jit` it: the minibatch (drawn for the global shape, so its values do not depend on the
layout) is split over the devices of the mesh, every device computes the losses and
gradients of its own rows, and the batch mean is an all-reduce. The state stays replicated,
the same on every process. See `docs/scaling.md`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, PRNGKeyArray

from ._checkpoint import save_checkpoint
from ._common import as_sampler


def sharded_sampler(
    data: Any, mesh: Mesh | None = None, axis: str = "batch"
) -> Callable[[PRNGKeyArray, int], Array]:
    r"""A sampler `(key, n) -> batch` whose batch of `n` points is split over the devices of
    `mesh` along its leading axis: `with_sharding_constraint(sample(key, n),
    NamedSharding(mesh, PartitionSpec(axis)))`, with `sample` the trainers' own sampler of
    `data`.

    Pass it as the `data` of a `*_make_step` (e.g.
    [`score_make_step`][gpm_sde.train.score_make_step]) and `jax.jit` the step: the gradient
    is the mean over the global batch,

    $$\nabla_\theta \frac1n\sum_{i=1}^{n}\ell_\theta(x_i) = \frac1n\sum_{p}
    \sum_{i \in \text{device } p}\nabla_\theta\ell_\theta(x_i),$$

    each device computing the terms of its $n/D$ rows and XLA summing them across devices
    (and processes), so the step equals the one-device step on the whole batch to round-off
    (the order of the sum differs).

    **Arguments:**

    - `data`: what a trainer accepts as `data`: an array `(N, *event)` (the same on every
      process; minibatches drawn with replacement), a law with `.sample(key, n)`, or a
      callable `(key, n) -> batch`.
    - `mesh`: a `jax.sharding.Mesh` with `Auto` axes; `None` builds a one-axis mesh named
      `axis` over `jax.devices()` (all devices of all processes after
      `jax.distributed.initialize()`).
    - `axis`: the mesh axis to split the batch over.

    **Returns:** the sampler. `n` (the trainer's `batch_size`) must be divisible by the size
    of the mesh axis.
    """
    if not isinstance(axis, str):
        raise TypeError(f"`axis` must be a mesh axis name (a str), got {axis!r}.")
    if mesh is None:
        mesh = Mesh(np.asarray(jax.devices()), (axis,))
    elif not isinstance(mesh, Mesh):
        raise TypeError(f"`mesh` must be a jax.sharding.Mesh or None, got {type(mesh).__name__}.")
    if axis not in mesh.axis_names:
        raise ValueError(
            f"`axis` {axis!r} is not an axis of `mesh` (its axes are {mesh.axis_names}); pass "
            f"one of those names."
        )
    size = mesh.shape[axis]
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    sample = as_sampler(data)

    def sampler(key: PRNGKeyArray, n: int) -> Array:
        if n % size:
            raise ValueError(
                f"`batch_size` {n} does not split evenly over the {size} devices of mesh axis "
                f"{axis!r}; use a multiple of {size} (e.g. {-(-n // size) * size})."
            )
        return jax.lax.with_sharding_constraint(sample(key, n), sharding)

    return sampler


def replicate(state: Any, mesh: Mesh | None = None) -> Any:
    r"""Every array leaf of `state` placed, whole, on every device of `mesh`
    (`jax.device_put(leaf, NamedSharding(mesh, PartitionSpec()))`): how a data-parallel
    training state lives. In a multi-process run, call it on every process with the same
    values (a state from the same `*_init` and key, or read by
    [`load_checkpoint`][gpm_sde.train.load_checkpoint]); the jitted step then keeps the
    state in this layout, so it is compiled once.

    **Arguments:**

    - `state`: a training state (any pytree; non-array leaves are kept).
    - `mesh`: a `jax.sharding.Mesh`; `None` builds a one-axis mesh over `jax.devices()`.

    **Returns:** the state with its arrays replicated.
    """
    if mesh is None:
        mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    elif not isinstance(mesh, Mesh):
        raise TypeError(f"`mesh` must be a jax.sharding.Mesh or None, got {type(mesh).__name__}.")
    everywhere = NamedSharding(mesh, PartitionSpec())

    def put(leaf: Any) -> Any:
        if isinstance(leaf, jax.Array | np.ndarray):
            return jax.device_put(leaf, everywhere)
        return leaf

    return jax.tree_util.tree_map(put, state)


def _to_host(leaf: Any) -> Any:
    """A leaf as a host value: a global `jax.Array` that is replicated (the same on every
    device, as a data-parallel training state is) is read from this process's first shard."""
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        if not leaf.is_fully_replicated:
            raise ValueError(
                "`state` holds an array split over several processes (sharding "
                f"{leaf.sharding}); a checkpoint stores replicated states: gather it first "
                "(`jax.experimental.multihost_utils.process_allgather`)."
            )
        return np.asarray(leaf.addressable_shards[0].data)
    return leaf


def save_checkpoint_once(
    path: str | os.PathLike[str], state: Any, *, trainer: str, step: int
) -> Path | None:
    r"""[`save_checkpoint`][gpm_sde.train.save_checkpoint] in a multi-process run: process 0
    writes the file (the state is replicated, so one copy is the whole state), then every
    process waits at a barrier until it is written, so that a process that reads it next sees
    the complete file. Call it from every process, with the same arguments, at the same point
    of the program; in a one-process run it is `save_checkpoint`.

    Resume on every process with [`load_checkpoint`][gpm_sde.train.load_checkpoint] (the
    folder must be shared by the processes, e.g. a network file system on a cluster).

    **Arguments:**

    - `path`, `trainer`, `step`: as for `save_checkpoint`.
    - `state`: the training state; arrays split over several processes are refused (they
      are not replicated).

    **Returns:** the path on process 0, `None` on the others.
    """
    written = None
    host = jax.tree_util.tree_map(_to_host, state)  # on every process: all refuse together
    if jax.process_index() == 0:
        written = save_checkpoint(path, host, trainer=trainer, step=step)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"gpm_sde checkpoint {os.fspath(path)} {int(step)}")
    return written
