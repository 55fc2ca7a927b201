r"""Re-initialisation of a network's affine layers."""

from __future__ import annotations

from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import PRNGKeyArray

from .._checks import check_key, check_positive

_M = TypeVar("_M")
_AFFINE = (eqx.nn.Linear, eqx.nn.Conv, eqx.nn.ConvTranspose)


def _is_affine(node: Any) -> bool:
    return isinstance(node, _AFFINE)


def _affine_layers(model: Any) -> list[Any]:
    return [n for n in jax.tree_util.tree_leaves(model, is_leaf=_is_affine) if _is_affine(n)]


def normal_init(model: _M, *, key: PRNGKeyArray, std: float = 0.02) -> _M:
    r"""`model` with every affine layer (`eqx.nn.Linear`, `Conv`, `ConvTranspose`)
    re-initialised as $W_{ij} \sim \mathcal{N}(0, \mathrm{std}^2)$, $b = 0$, the other leaves
    (e.g. Fourier frequencies) unchanged: DCGAN's initialisation (Radford et al. 2016, §4:
    $\mathcal{N}(0, 0.02^2)$), which the GPM authors' code applies to its discriminators and
    GAN generators (`init: {name: normal, gain: 0.02}`, zero biases).

    **Arguments:** `model`: any pytree of equinox layers; `key`: PRNG key (one draw per layer);
    `std`: the standard deviation of the weights.
    """
    check_key("key", key)
    check_positive("std", std, fix="pass e.g. std=0.02")
    layers = _affine_layers(model)
    if not layers:
        raise ValueError(
            "`model` has no affine layer (eqx.nn.Linear, Conv or ConvTranspose) to initialise; "
            "pass a network built from equinox layers."
        )
    keys = jr.split(key, len(layers))
    weights = [
        std * jr.normal(k, layer.weight.shape, layer.weight.dtype)
        for k, layer in zip(keys, layers, strict=True)
    ]
    model = eqx.tree_at(lambda m: [layer.weight for layer in _affine_layers(m)], model, weights)

    def biases(m: Any) -> list[Any]:
        return [layer.bias for layer in _affine_layers(m) if layer.bias is not None]

    return eqx.tree_at(biases, model, [jnp.zeros_like(b) for b in biases(model)])
