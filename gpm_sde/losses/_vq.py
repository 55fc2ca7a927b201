r"""The VQ-VAE objective (van den Oord et al. 2017): reconstruction through the
straight-through estimator, the codebook and commitment terms, and codebook perplexity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from .._checks import check_callable, check_int, check_scalar


def codebook_perplexity(indices: Int[Array, "*batch"], num_codes: int) -> Float[Array, ""]:
    r"""The perplexity of codebook usage, $\exp\big(-\sum_k p_k\log p_k\big)$ with $p_k$ the
    fraction of `indices` equal to $k$ (and $0\log 0 = 0$): the effective number of codes in
    use, $K$ for a uniform usage of all $K$ codes and 1 when a single code is used (the usage
    statistic reported for VQ-VAEs, e.g. in the authors' Sonnet implementation;
    reconstructed).

    **Arguments:**

    - `indices`: the code indices of a batch, any shape, values in `[0, num_codes)`.
    - `num_codes`: $K$.
    """
    num_codes = check_int("num_codes", num_codes, 1, "the codebook size")
    onehot = jax.nn.one_hot(jnp.asarray(indices).reshape(-1), num_codes)
    p = jnp.mean(onehot, axis=0)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


def vq_vae_loss(
    encoder: Callable[[Array], Array],
    decoder: Any,
    quantizer: Any,
    x: Float[ArrayLike, " n *shape"],
    *,
    beta: float = 0.25,
    codebook_loss: bool = True,
) -> tuple[Float[Array, ""], dict[str, Array]]:
    r"""The VQ-VAE loss of van den Oord et al. 2017, eq. 3, averaged over the batch:

    $$L = -\log p_\theta\big(x \mid z_q^{\rm st}(x)\big)
    + \big\|\operatorname{sg}[z_e(x)] - e\big\|_2^2
    + \beta\,\big\|z_e(x) - \operatorname{sg}[e]\big\|_2^2,$$

    $z_e$ the encoder output, $e$ its nearest codes, $z_q^{\rm st} = z_e + \operatorname{sg}
    [e - z_e]$ the straight-through quantisation
    ([`VectorQuantizer`][gpm_sde.nn.VectorQuantizer]): the reconstruction term trains the
    decoder and, through the copied gradient, the encoder, but never the codebook; the
    codebook term moves the codes towards the encoder outputs; the commitment term (weight
    β, 0.25 in the paper) keeps the encoder outputs near their codes. Squared norms sum over
    all code vectors of a point and their entries. With an EMA codebook
    ([`CodebookEMA`][gpm_sde.nn.CodebookEMA], their App. A.1) pass `codebook_loss=False`:
    the EMA replaces the codebook term.

    **Arguments:**

    - `encoder`: `encoder(x) -> z_e` on one point, `z_e: (..., code_dim)`, e.g. an
      [`MLPEncoder`][gpm_sde.nn.MLPEncoder].
    - `decoder`: a module with `decoder.log_prob(z, x)` $= \log p_\theta(x \mid z)$.
    - `quantizer`: the [`VectorQuantizer`][gpm_sde.nn.VectorQuantizer].
    - `x`: a batch `(n, *shape)`.
    - `beta`: the commitment weight β ≥ 0.
    - `codebook_loss`: include the codebook term (`False` with EMA updates).

    Returns `(loss, aux)`: `aux` holds the batch means `"recon"` (the negative
    log-likelihood, nats), `"codebook"`, `"commitment"` (unweighted by β), the
    `"perplexity"` of the batch's codes
    ([`codebook_perplexity`][gpm_sde.losses.codebook_perplexity]), and the arrays `"z_e"`
    and `"indices"` (for an EMA update).
    """
    check_callable("encoder", encoder, "x -> z_e", "e.g. `nn.MLPEncoder`")
    if not callable(getattr(decoder, "log_prob", None)):
        raise TypeError(
            f"`decoder` must have a method `log_prob(z, x)`, e.g. `gpm_sde.nn.GaussianDecoder`;"
            f" got {type(decoder).__name__}."
        )
    check_callable("quantizer", quantizer, "z_e -> (z_q, indices)", "a `nn.VectorQuantizer`")
    check_scalar("beta", beta)
    x = jnp.asarray(x)
    z_e = jax.vmap(encoder)(x)
    z_st, indices = quantizer(z_e)
    e = quantizer.codebook[indices]
    axes = tuple(range(1, z_e.ndim))
    recon = -jax.vmap(decoder.log_prob)(z_st, x)
    codebook = jnp.sum((jax.lax.stop_gradient(z_e) - e) ** 2, axis=axes)
    commitment = jnp.sum((z_e - jax.lax.stop_gradient(e)) ** 2, axis=axes)
    per_point = recon + beta * commitment
    if codebook_loss:
        per_point = per_point + codebook
    aux = {
        "recon": jnp.mean(recon),
        "codebook": jnp.mean(codebook),
        "commitment": jnp.mean(commitment),
        "perplexity": codebook_perplexity(indices, quantizer.codebook.shape[0]),
        "z_e": z_e,
        "indices": indices,
    }
    return jnp.mean(per_point), aux
