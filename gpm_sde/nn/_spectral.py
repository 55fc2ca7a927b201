r"""Spectral normalisation and labels for the discriminators and generators: the layer
wrapping (`eqx.nn.SpectralNorm`), calls that thread an `eqx.nn.State`, a label embedding with a
null label, and [`FrozenState`][gpm_sde.nn.FrozenState], a stateful network bound to its state."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Int, PRNGKeyArray

CONDITIONINGS = ("concat", "projection")


def maybe_spectral(
    layer: Any, spectral_norm: bool, key: PRNGKeyArray, power_iterations: int = 1
) -> Any:
    """`eqx.nn.SpectralNorm(layer, "weight")` when `spectral_norm`, else `layer`."""
    if not spectral_norm:
        return layer
    return eqx.nn.SpectralNorm(layer, "weight", power_iterations, key=key)


def apply(layer: Any, x: Array, state: eqx.nn.State | None) -> tuple[Array, Any]:
    """`layer(x)`, threading `state` through a spectrally normalised layer."""
    if isinstance(layer, eqx.nn.SpectralNorm):
        if state is None:
            raise ValueError(NEEDS_STATE)
        return layer(x, state)
    return layer(x), state


def embed(
    embedding: Any, y: Int[Array, ""], state: eqx.nn.State | None
) -> tuple[Array, eqx.nn.State | None]:
    """Row `y` of an (optionally spectrally normalised) `eqx.nn.Embedding`."""
    return apply(embedding, jnp.asarray(y), state)


def num_embeddings(embedding: Any) -> int:
    inner = embedding.layer if isinstance(embedding, eqx.nn.SpectralNorm) else embedding
    return int(inner.num_embeddings)


def label_embedding(
    num_classes: int | None,
    size: int,
    key: PRNGKeyArray,
    spectral_norm: bool = False,
    power_iterations: int = 1,
) -> Any:
    """`Embedding(num_classes + 1, size)` (the extra row is the null label), from a key folded
    off the network's own key so that its unconditional parameters stay as they were."""
    if num_classes is None:
        return None
    k = jr.fold_in(key, 7919)
    emb = eqx.nn.Embedding(num_classes + 1, size, key=k)
    return maybe_spectral(emb, spectral_norm, jr.fold_in(k, 1), power_iterations)


def label_row(
    embedding: Any, y: Any, state: eqx.nn.State | None, owner: str
) -> tuple[Array | None, eqx.nn.State | None]:
    """The embedding row of label `y` (`None`: the null label), or `None` for an unconditional
    network (which then rejects a label)."""
    if embedding is None:
        if y is not None:
            raise ValueError(
                f"a label `y` was given but this {owner} is unconditional; build it with "
                f"`num_classes=...` to condition on a label."
            )
        return None, state
    null = num_embeddings(embedding) - 1
    return embed(embedding, jnp.asarray(null if y is None else y), state)


def check_conditioning(conditioning: Any) -> str:
    if conditioning not in CONDITIONINGS:
        raise ValueError(
            f"`conditioning` must be 'concat' (label embedding added to the first layer, "
            f"Mirza & Osindero 2014) or 'projection' (Miyato & Koyama 2018), got "
            f"{conditioning!r}."
        )
    return conditioning


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {type(value).__name__}.")
    return value


NEEDS_STATE = (
    "this network is spectrally normalised (`spectral_norm=True`) and needs its power-"
    "iteration state: build it with `model, state = eqx.nn.make_with_state(Cls)(...)` and call "
    "it as `model(..., state=state) -> (out, state)`, or bind the state with "
    "`gpm_sde.nn.FrozenState(model, state)`."
)


class FrozenState(eqx.Module):
    r"""A stateful network bound to a fixed `eqx.nn.State`, in inference mode: a plain
    function of its inputs. For a spectrally normalised discriminator this is
    $D$ with every weight divided by the estimate $\hat\sigma(W) = u^\top W v$ held in the
    state (no power-iteration update), the network
    [`train_gan`][gpm_sde.train.train_gan] returns.

    **Arguments:** `model`, a network called as `model(*args, state=state) -> (out, state)`;
    `state`, its `eqx.nn.State`.

    Called as `frozen(*args)`; returns `out`.
    """

    model: Any
    state: eqx.nn.State

    def __init__(self, model: Any, state: eqx.nn.State):
        if not isinstance(state, eqx.nn.State):
            raise TypeError(
                f"`state` must be an eqx.nn.State (from `eqx.nn.make_with_state`), got "
                f"{type(state).__name__}."
            )
        self.model = eqx.nn.inference_mode(model, True)
        self.state = state

    def __call__(self, *args: Any) -> Any:
        out, _ = self.model(*args, state=self.state)
        return out
