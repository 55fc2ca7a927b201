r"""The mean-field kernel score: $\nabla\log$ of a Gaussian kernel density estimate of the cloud."""

from __future__ import annotations

import math
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_int, check_positive, check_scalar, is_concrete
from ..schedules import AbstractSchedule, Constant, Schedule, as_schedule
from ._cloud import AbstractCloudScore

Bandwidth = Literal["scott", "silverman"] | float


def kde_bandwidth(y: Float[Array, " n *event"], rule: Literal["scott", "silverman"]) -> Array:
    r"""Rule-of-thumb bandwidth $h$ for a Gaussian KDE of the cloud `y` in $d$ dimensions, with
    $\hat\sigma$ the mean per-coordinate standard deviation:

    - Scott (1992, eq. 6.42): $h = \hat\sigma\, n^{-1/(d+4)}$;
    - Silverman (1986, eq. 4.14): $h = \hat\sigma\,\big(\tfrac{4}{d+2}\big)^{1/(d+4)} n^{-1/(d+4)}$.
    """
    n = y.shape[0]
    flat = y.reshape(n, -1)
    d = flat.shape[1]
    spread = jnp.mean(jnp.std(flat, axis=0, ddof=1))
    factor = n ** (-1.0 / (d + 4))
    if rule == "silverman":
        factor = factor * (4.0 / (d + 2)) ** (1.0 / (d + 4))
    elif rule != "scott":
        raise ValueError(f"`bandwidth` rule must be 'scott' or 'silverman', got {rule!r}.")
    return spread * factor


def _check_width(name: str, h, dtype) -> None:
    """Raise `ValueError` unless a concrete kernel width is finite and $h^2$ is a normal float
    of `dtype` (a smaller $h$ makes $1/h^2$ overflow and the weights NaN; XLA flushes
    subnormal floats to zero)."""
    check_positive(name, h, fix="pass a kernel width h > 0")
    if h is None or not is_concrete(h):
        return
    smallest = float(np.sqrt(np.finfo(dtype).tiny))
    if np.any(np.asarray(jax.device_get(h), dtype=np.float64) < smallest):
        raise ValueError(
            f"`{name}` must be at least {smallest:.3g} (so that h^2 is a normal "
            f"{np.dtype(dtype).name} float), got {h!r}; pass a kernel width on the scale of the "
            f"cloud's spacing."
        )


def _pad_rows(a: Array, multiple: int) -> Array:
    return jnp.pad(a, ((0, (-a.shape[0]) % multiple), (0, 0)))


def _particle_axes(x: Array) -> tuple[Any, tuple[str, ...]] | None:
    """The (abstract) mesh and the mesh axes that shard the leading (particle) axis of `x`
    when they are **explicit** mesh axes (sharding in types, e.g. a `jax.make_mesh` mesh);
    `None` otherwise (unsharded, or an `Auto` mesh whose partitioning GSPMD decides)."""
    typeof = getattr(jax, "typeof", None)
    if typeof is None or getattr(jax, "shard_map", None) is None:  # older JAX: GSPMD only
        return None
    sharding = getattr(typeof(x), "sharding", None)
    spec = getattr(sharding, "spec", None)
    if not spec or spec[0] is None:
        return None
    axes = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
    mesh = sharding.mesh  # pyright: ignore[reportOptionalMemberAccess]
    if not set(axes) <= set(getattr(mesh, "explicit_axes", ())):
        return None
    return mesh, axes


def _blocked(queries: Array, points: Array, h: Array, block: int, chunks: int) -> Array:
    """The blocked online-softmax kernel score (see `kernel_score_blocked`). The queries are
    split into `chunks` contiguous chunks run side by side (`vmap`), each in tiles of at most
    `block` rows (`lax.map`), so that a particle-sharded cloud keeps its queries on their
    devices under GSPMD; every query meets the points in the same `block`-row tiles in the same
    order whatever the chunking, so the arithmetic per query does not depend on it."""
    m, d = queries.shape
    pts = _pad_rows(points, block)
    valid = jnp.arange(pts.shape[0]) < points.shape[0]
    pts_blocks = pts.reshape(-1, block, d)
    valid_blocks = valid.reshape(-1, block)
    inv2h2 = 0.5 / h**2

    def one_query_block(q):
        def body(carry, blk):
            run_max, run_sum, run_vec = carry
            p, ok = blk
            sq = jnp.sum(q**2, 1)[:, None] + jnp.sum(p**2, 1)[None, :] - 2.0 * q @ p.T
            logits = jnp.where(ok[None, :], -jnp.maximum(sq, 0.0) * inv2h2, -jnp.inf)
            new_max = jnp.maximum(run_max, jnp.max(logits, axis=1))
            scale = jnp.exp(run_max - new_max)
            w = jnp.exp(logits - new_max[:, None])
            return (new_max, run_sum * scale + w.sum(1), run_vec * scale[:, None] + w @ p), None

        init = (
            jnp.full(q.shape[0], -jnp.inf, q.dtype),
            jnp.zeros(q.shape[0], q.dtype),
            jnp.zeros_like(q),
        )
        (_, total, weighted), _ = jax.lax.scan(body, init, (pts_blocks, valid_blocks))
        return (weighted / total[:, None] - q) / h**2

    local = m // chunks
    q_block = max(1, min(block, local))

    def one_chunk(q):
        q_pad = _pad_rows(q, q_block)
        out = jax.lax.map(one_query_block, q_pad.reshape(-1, q_block, d))
        return out.reshape(-1, d)[:local]

    if chunks == 1:
        return one_chunk(queries)
    return jax.vmap(one_chunk)(queries.reshape(chunks, local, d)).reshape(m, d)


def kernel_score_blocked(
    queries: Float[Array, "m d"], points: Float[Array, "n d"], h: Float[ArrayLike, ""], block: int
) -> Float[Array, "m d"]:
    r"""$\nabla\log\hat p(x)$ for $\hat p = \frac1n\sum_j \mathcal{N}(x_j, h^2 I)$ at every query:

    $$\nabla\log\hat p(x) = \frac{1}{h^2}\Big(\sum_j w_j(x)\, x_j - x\Big),\qquad
    w_j(x) = \operatorname{softmax}_j\Big(-\frac{\|x - x_j\|^2}{2h^2}\Big).$$

    Computed in `block × block` tiles with a running (online) log-sum-exp over the point
    blocks, as in memory-efficient attention (Rabe & Staats 2021): memory $O(\text{block}^2 +
    (m + n)d)$, never $O(mn)$.

    **Sharding.** Every query needs every point, so on a cloud sharded over the particle axis
    (see [`shard_cloud`][gpm_sde.solve.shard_cloud]) the queries stay on their devices and
    the points are gathered to all of them. On an `Auto` mesh (`jax.sharding.Mesh(...)`) the
    queries are processed in `gcd(m, jax.device_count())` contiguous chunks side by side,
    which GSPMD keeps on their devices while it all-gathers the points; on an `Explicit` mesh
    (the default of `jax.make_mesh`) the same function runs per shard under `jax.shard_map`
    with the points replicated. The result equals the single-device one to round-off and is
    sharded like `queries`.
    """
    block = check_int("block", block, 1, "the tile size", example=256)
    _check_width("h", h, queries.dtype)
    h = jnp.asarray(h, dtype=queries.dtype)
    explicit = _particle_axes(queries)
    if explicit is not None:
        mesh, axes = explicit
        spec = P(axes[0] if len(axes) == 1 else axes, None)
        run = jax.shard_map(  # pyright: ignore[reportAttributeAccessIssue]
            lambda q, p, hh: _blocked(q, p, hh, block, 1),
            mesh=mesh,
            in_specs=(spec, P(), P()),
            out_specs=spec,
            check_vma=False,  # the scan carries start replicated, become per-shard
        )
        everywhere = jax.sharding.NamedSharding(mesh, P())
        points = jax.sharding.reshard(points, everywhere)  # every device sees every point
        return run(queries, points, jax.sharding.reshard(h, everywhere))
    chunks = math.gcd(queries.shape[0], jax.device_count()) if queries.shape[0] else 1
    return _blocked(queries, points, h, block, chunks)


_BLOCKS = {"cpu": ((0, 1024),), "gpu": ((0, 4096), (131_072, 8192))}
"""The measured default tile size per platform, `(from N, block)` rows in increasing N
(`benchmarks/kernel_score.py --sweep`; see `default_block`)."""


def default_block(n: int, platform: str | None = None) -> int:
    r"""The tile size [`KernelScore`][gpm_sde.scores.KernelScore] and
    [`SmoothedCloudScore`][gpm_sde.scores.SmoothedCloudScore] use when `block=None`: the
    measured best for the platform and $n$, capped at the next power of two $\ge n$ (a tile
    larger than the cloud only pads it).

    Measured with `benchmarks/kernel_score.py --sweep` (float32, $d = 2$, medians of 7 runs):

    | platform | N | 256 | 512 | 1024 | 2048 | 4096 | 8192 | default |
    |---|---|---|---|---|---|---|---|---|
    | CPU (2 shared cores) | $3\cdot10^4$ | 0.72 | 1.16 | **1.34** | 0.67 | | | 1024 |
    | CPU (2 shared cores) | $10^4$ | 0.38 | 0.76 | **0.78** | 0.13 | | | 1024 |
    | GPU (H200) | $3\cdot10^4$ | 4.9 | 15.8 | 40.9 | 125.0 | **125.3** | | 4096 |
    | GPU (H200) | $3\cdot10^5$ | | 16.5 | 45.2 | 150.0 | 163.7 | **191.1** | 8192 |

    (Gpairs/s, $N^2$ pairs per call.) On a CPU a `1024 × 1024` float32 tile (4 MB) is the
    largest that stays in cache; at 2048 the throughput halves. Below $N \approx 8000$ the
    tiles 256, 512 and 1024 are within 10% of each other (interleaved medians at
    $N = 2000, 4000$), so 1024 is kept for every $N$. On a GPU larger tiles keep
    more of the device busy per step of the scan over point blocks: 4096 below
    $N = 131072$, 8192 from there (the boundary lies between the two measured sizes). Other
    platforms (TPU) are unmeasured and get 1024. The CPU rows were taken on a machine shared
    with other jobs: absolute figures vary by up to 3× from run to run, the ranking did not.

    **Arguments:**

    - `n`: the number of particles (queries and points).
    - `platform`: `"cpu"`, `"gpu"`, `"tpu"`, ...; `None` is `jax.default_backend()`.
    """
    n = check_int("n", n, 1, "the number of particles", example=1000)
    platform = jax.default_backend() if platform is None else platform
    block = 1024
    for start, size in _BLOCKS.get(platform, ((0, 1024),)):
        if n >= start:
            block = size
    return min(block, 2 ** math.ceil(math.log2(n)))


def _tile(block: int | None, n: int) -> int:
    if block is None:
        return default_block(max(n, 1))
    return min(block, max(1, 2 ** math.ceil(math.log2(n))))


class KernelScore(AbstractCloudScore):
    r"""Mean-field estimate of the cloud's own score: the score of the Gaussian kernel density
    estimate $\hat p_s = \frac1N\sum_j \mathcal{N}(y_j, h^2 I)$ at every particle,

    $$\nabla\log\hat p_s(y_i) = \frac{1}{h^2}\Big(\sum_j \operatorname{softmax}_j
    \Big(-\frac{\|y_i - y_j\|^2}{2h^2}\Big)\, y_j - y_i\Big).$$

    With a fixed $h = \sigma$ it is exactly $\nabla\log(\rho_s * k_\sigma)$, the smoothed
    generated score of the GPM Score-GAN field (Franceschi et al. 2023, §4.1). Memory is
    $O(N\cdot\text{block})$ (see `kernel_score_blocked`), so $N = 10^5$ particles run on a CPU.

    **Arguments:**

    - `bandwidth`: `"scott"`, `"silverman"` (recomputed from the cloud at every call) or a
      fixed float $h > 0$.
    - `block`: tile size of the blocked computation; `None` (default) picks it from the
      platform and $N$ ([`default_block`][gpm_sde.scores.default_block]: 1024 on a CPU,
      where it runs twice as fast as 256 at $N = 3\cdot10^4$; 4096 to 8192 on a GPU).
    """

    bandwidth: Bandwidth = eqx.field(static=True)
    block: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if isinstance(self.bandwidth, str):
            if self.bandwidth not in ("scott", "silverman"):
                raise ValueError(
                    f"`bandwidth` must be 'scott', 'silverman' or a float > 0, got "
                    f"{self.bandwidth!r}."
                )
        else:
            check_scalar("bandwidth", self.bandwidth)
            _check_width("bandwidth", self.bandwidth, np.float64)
        if self.block is not None:
            check_int("block", self.block, 1, "the tile size or None", example=1024)

    def bandwidth_for(self, y: Float[Array, " n *event"]) -> Array:
        """The bandwidth $h$ used for the cloud `y`."""
        if isinstance(self.bandwidth, str):
            return kde_bandwidth(y, self.bandwidth)  # pyright: ignore[reportArgumentType]
        return jnp.asarray(self.bandwidth, dtype=y.dtype)

    def __call__(self, s, y):
        n = y.shape[0]
        flat = y.reshape(n, -1)
        h = self.bandwidth_for(y)
        return kernel_score_blocked(flat, flat, h, _tile(self.block, n)).reshape(y.shape)


class SmoothedCloudScore(AbstractCloudScore):
    r"""The score of the cloud smoothed at a scheduled noise level, at every particle:

    $$\nabla\log(\hat\rho_s * k_{\sigma(s)})(y_i),\qquad
    \hat\rho_s = \frac1N\sum_j\delta_{y_j},$$

    i.e. [`KernelScore`][gpm_sde.scores.KernelScore] with bandwidth $h = \sigma(s)$ taken from
    a schedule at call time (traced, so it can change inside a jitted loop). Paired with a
    real score of $q * k_{\sigma(s)}$ at the same $\sigma$, the two smoothed laws agree exactly
    when $\hat\rho_s = q$ (Franceschi et al. 2023, §4.1).

    **Arguments:**

    - `sigma`: the schedule $\sigma(s) > 0$ (a float or a callable of $s$).
    - `block`: tile size of the blocked computation; `None` (default): the platform's
      ([`default_block`][gpm_sde.scores.default_block]).
    """

    sigma: AbstractSchedule
    block: int | None = eqx.field(static=True, default=None)

    def __init__(self, sigma: Schedule, block: int | None = None):
        sched = as_schedule(sigma)
        if isinstance(sched, Constant) and is_concrete(sched.value):
            _check_width("sigma", sched.value, np.float64)
        if block is not None:
            block = check_int("block", block, 1, "the tile size or None", example=1024)
        self.sigma = sched
        self.block = block

    def __call__(self, s, y):
        n = y.shape[0]
        flat = y.reshape(n, -1)
        h = jnp.asarray(self.sigma(s), dtype=y.dtype)
        return kernel_score_blocked(flat, flat, h, _tile(self.block, n)).reshape(y.shape)
