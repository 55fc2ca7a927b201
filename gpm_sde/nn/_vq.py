r"""Vector quantisation (VQ-VAE, van den Oord et al. 2017): a codebook with nearest-code
lookup and the straight-through estimator, and its exponential-moving-average update as an
explicit state module."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._checks import check_float_array
from ._common import check_size


class VectorQuantizer(eqx.Module):
    r"""A codebook $e_1, \dots, e_K \in \mathbb{R}^D$ (van den Oord et al. 2017, §3.1): each
    vector $z_e$ along the last axis of an encoder output is replaced by its nearest code,

    $$k(z_e) = \arg\min_j \|z_e - e_j\|_2,\qquad z_q = e_{k(z_e)}\quad\text{(their eq. 1, 2)},$$

    and gradients pass through the non-differentiable lookup with the straight-through
    estimator, $z_q^{\rm st} = z_e + \operatorname{sg}[z_q - z_e]$: its value is $z_q$, its
    Jacobian in $z_e$ the identity, and the codebook gets no gradient from whatever is
    computed from it (§3.2: "we approximate the gradient ... by just copying gradients from
    decoder input $z_q(x)$ to encoder output $z_e(x)$").

    **Arguments:**

    - `num_codes`: $K$; `code_dim`: $D$.
    - `key`: PRNG key; the codes start as draws of $\mathcal{U}(-1/K, 1/K)$ per entry (the
      reference implementation's initialisation), or pass `codebook` itself.
    - `codebook`: an explicit initial codebook `(num_codes, code_dim)` (then `key` is unused
      and may be `None`).

    `quantizer(z_e)` returns `(z_q_st, indices)` for `z_e: (..., code_dim)`;
    `quantizer.lookup(z_e)` the plain `(z_q, indices)` without the straight-through term.
    """

    codebook: Float[Array, "K D"]

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        *,
        key: PRNGKeyArray | None = None,
        codebook: Float[Array, "K D"] | None = None,
    ):
        num_codes = check_size("num_codes", num_codes)
        code_dim = check_size("code_dim", code_dim)
        if codebook is not None:
            check_float_array("codebook", codebook, ndim=2, shape_hint="(num_codes, code_dim)")
            if jnp.shape(codebook) != (num_codes, code_dim):
                raise ValueError(
                    f"`codebook` must have shape (num_codes, code_dim) = {(num_codes, code_dim)}, "
                    f"got {jnp.shape(codebook)}."
                )
            self.codebook = jnp.asarray(codebook)
        elif key is None:
            raise ValueError("pass `key=` (a PRNG key) or an explicit `codebook=` array.")
        else:
            lim = 1.0 / num_codes
            self.codebook = jr.uniform(key, (num_codes, code_dim), minval=-lim, maxval=lim)

    @property
    def num_codes(self) -> int:
        """$K$."""
        return self.codebook.shape[0]

    def lookup(
        self, z_e: Float[Array, "*batch D"]
    ) -> tuple[Float[Array, "*batch D"], Int[Array, "*batch"]]:
        """The nearest codes $z_q$ and their indices $k(z_e)$ (ties: the lowest index)."""
        z_e = jnp.asarray(z_e)
        if z_e.ndim < 1 or z_e.shape[-1] != self.codebook.shape[1]:
            raise ValueError(
                f"`z_e` must end with the code dimension {self.codebook.shape[1]}, got shape "
                f"{z_e.shape}; reshape the encoder output to (..., code_dim)."
            )
        e = self.codebook
        dist = (
            jnp.sum(z_e**2, -1, keepdims=True) - 2.0 * z_e @ e.T + jnp.sum(e**2, -1)
        )  # ‖z_e − e_j‖² for every j
        indices = jnp.argmin(dist, axis=-1)
        return e[indices], indices

    def __call__(
        self, z_e: Float[Array, "*batch D"]
    ) -> tuple[Float[Array, "*batch D"], Int[Array, "*batch"]]:
        z_q, indices = self.lookup(z_e)
        return z_e + jax.lax.stop_gradient(z_q - z_e), indices


class CodebookEMA(eqx.Module):
    r"""The exponential-moving-average state of a codebook (van den Oord et al. 2017,
    App. A.1, eqs. 6–8): per code $i$ a count $N_i$ and a sum $m_i$, updated from the $n_i$
    encoder outputs $z_{i,1..n_i}$ assigned to it in a batch by

    $$N_i \leftarrow \gamma N_i + (1 - \gamma)\,n_i,\qquad
    m_i \leftarrow \gamma m_i + (1 - \gamma)\sum_j z_{i,j},\qquad e_i = m_i / \tilde N_i,$$

    with the Laplace-smoothed count $\tilde N_i = (N_i + \epsilon)\,\frac{\sum_j N_j}{\sum_j
    N_j + K\epsilon}$ of the authors' Sonnet implementation (reconstructed from it; it keeps
    $e_i$ finite for a code that was never used). The state starts at $N_i = 1$,
    $m_i = e_i$, so the first codebook is the quantiser's and a code that is never assigned
    stays where it is. A plain module updated functionally:
    `ema, quantizer = ema.update(quantizer, z_e, indices)`.

    **Arguments:**

    - `quantizer`: the [`VectorQuantizer`][gpm_sde.nn.VectorQuantizer] whose codebook the
      state tracks.
    - `decay`: $\gamma \in [0, 1)$ (0.99 in the paper).
    - `eps`: the smoothing $\epsilon \ge 0$.
    """

    cluster_size: Float[Array, " K"]
    embed_sum: Float[Array, "K D"]
    decay: float = eqx.field(static=True)
    eps: float = eqx.field(static=True)

    def __init__(self, quantizer: VectorQuantizer, decay: float = 0.99, eps: float = 1e-5):
        if not isinstance(quantizer, VectorQuantizer):
            raise TypeError(
                f"`quantizer` must be a gpm_sde.nn.VectorQuantizer, got {type(quantizer).__name__}."
            )
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"`decay` must be in [0, 1), got {decay}; the paper uses 0.99.")
        if not float(eps) >= 0.0:
            raise ValueError(f"`eps` must be >= 0, got {eps}; the default is 1e-5.")
        self.cluster_size = jnp.ones(quantizer.codebook.shape[0], quantizer.codebook.dtype)
        self.embed_sum = quantizer.codebook
        self.decay, self.eps = float(decay), float(eps)

    def update(
        self,
        quantizer: VectorQuantizer,
        z_e: Float[Array, "*batch D"],
        indices: Int[Array, "*batch"],
    ) -> tuple[CodebookEMA, VectorQuantizer]:
        """One EMA step from the encoder outputs `z_e` and their code `indices` (as returned
        by the quantiser on this batch); returns the new state and the quantiser with the
        new codebook $e_i = m_i / \\tilde N_i$. No gradient flows through it."""
        k, d = quantizer.codebook.shape
        z = jax.lax.stop_gradient(jnp.asarray(z_e)).reshape(-1, d)
        onehot = jax.nn.one_hot(jnp.asarray(indices).reshape(-1), k, dtype=z.dtype)
        g = self.decay
        counts = g * self.cluster_size + (1.0 - g) * onehot.sum(0)
        sums = g * self.embed_sum + (1.0 - g) * onehot.T @ z
        total = counts.sum()
        smoothed = (counts + self.eps) / (total + k * self.eps) * total
        new = eqx.tree_at(lambda s: (s.cluster_size, s.embed_sum), self, (counts, sums))
        codebook = sums / smoothed[:, None]
        return new, eqx.tree_at(lambda q: q.codebook, quantizer, codebook)
