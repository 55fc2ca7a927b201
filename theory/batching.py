"""Mapping a pointwise function over many points without large batched LAPACK calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

BATCH_SIZE = 16


def map_points(fn: Callable[..., Any], *args: Any, batch_size: int = BATCH_SIZE) -> Any:
    """`jax.vmap(fn)(*args)`, computed in chunks of `batch_size` points by `jax.lax.map`.

    Use it when `fn` factorises a matrix that differs from point to point (a smoothed
    covariance $\\Sigma_k + \\sigma(s)^2 I$ at a per-point time, say): under a plain `vmap`
    that becomes one batched LAPACK call over all points, and jaxlib 0.10's CPU kernels split
    a large batch across the intra-op thread pool and block waiting for it, which deadlocks
    the pool when two such calls run at once (seen here on a 2-core machine; the parallel
    path is compiled out of open-source jaxlib from 0.11). Chunks keep every batch small.
    """
    return jax.lax.map(lambda a: fn(*a), args, batch_size=batch_size)
