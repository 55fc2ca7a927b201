r"""From a validated [`RunConfig`][gpm_sde.cli.config.RunConfig] to the objects of a run: the
training data, the models of its family, the data score, and the training state that the
trainer's checkpoint holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .. import data, nn, processes, train
from ..distributions import GaussianMixture
from ..scores import SmoothedMixtureScore
from .config import MIXTURES, SAMPLERS, ConfigError, RunConfig

DIGITS_SHAPE = (1, 8, 8)


@dataclass(frozen=True)
class Data:
    """The training data of a run.

    - `train`: what the trainer gets: a law with `.sample`, a sampler `(key, n)`, or an array.
    - `law`: the exact mixture, if the data set is one (exact data scores).
    - `reference`: `(key, n) -> points` of the data, for metrics and figures.
    - `event_shape`: the shape of one point.
    """

    train: Any
    law: GaussianMixture | None
    reference: Callable[[Any, int], jax.Array]
    event_shape: tuple[int, ...]

    @property
    def is_image(self) -> bool:
        return self.event_shape == DIGITS_SHAPE


def load_data(cfg: RunConfig) -> Data:
    """The data set `[data] name`, as a law, a sampler or a fixed set of `[data] n` points."""
    name, n, seed = cfg["data"]["name"], cfg["data"]["n"], cfg["data"]["seed"]
    key = jr.key(seed)
    if name == "digits":
        images, _ = data.digits("train", seed=seed)
        if n is not None:
            images = images[:n]
        return Data(images, None, _rows(images), DIGITS_SHAPE)
    if name in MIXTURES:
        law = getattr(data, name)()
        train = law if n is None else law.sample(key, n)
        return Data(train, law, lambda k, m: law.sample(k, m), (2,))
    assert name in SAMPLERS
    sampler = getattr(data, name)
    train = sampler if n is None else sampler(key, n)
    return Data(train, None, lambda k, m: sampler(k, m), (2,))


def _rows(points: jax.Array) -> Callable[[Any, int], jax.Array]:
    def draw(key: Any, m: int) -> jax.Array:
        if m >= points.shape[0]:
            return points
        return points[jr.permutation(key, points.shape[0])[:m]]

    return draw


def sigma_data(cfg: RunConfig, d: Data) -> float:
    """`[model] sigma_data`, or the mean per-coordinate standard deviation of the data."""
    value = cfg["model"].get("sigma_data")
    if value is not None:
        return float(value)
    x = d.reference(jr.key(12345), 4096)
    return float(jnp.mean(jnp.std(x.reshape(x.shape[0], -1), axis=0)))


def process(cfg: RunConfig) -> processes.AbstractLinearProcess:
    """The forward process of a score model."""
    return {"vp": processes.vp, "subvp": processes.subvp, "ve": processes.ve}[
        cfg["model"]["process"]
    ]()


def _score_net(cfg: RunConfig, d: Data, key: Any, fourier_scale: float) -> Any:
    m = cfg["model"]
    if d.is_image:
        return nn.UNet8(
            key=key,
            channels=tuple(m["channels"]),
            embed_dim=m["embed_dim"],
            fourier_scale=fourier_scale,
        )
    return nn.ScoreMLP(
        2, m["hidden"], m["depth"], m["embed_dim"], key=key, fourier_scale=fourier_scale
    )


def _generator(cfg: RunConfig, d: Data, key: Any) -> Any:
    m = cfg["model"]
    if d.is_image:
        return nn.ConvGenerator8(m["latent_dim"], key=key, channels=m["conv_width"])
    return nn.MLPGenerator(m["latent_dim"], 2, m["hidden"], m["depth"], key=key)


def _discriminator(cfg: RunConfig, d: Data, key: Any, time_conditioned: bool) -> Any:
    m = cfg["model"]
    embed = m.get("embed_dim") or 32
    if d.is_image:
        return nn.ConvDiscriminator8(
            key=key, channels=m["conv_width"], time_conditioned=time_conditioned, embed_dim=embed
        )
    return nn.MLPDiscriminator(
        2, m["hidden"], m["depth"], key=key, time_conditioned=time_conditioned, embed_dim=embed
    )


def edm_denoiser(cfg: RunConfig, d: Data, key: Any, sd: float | None = None) -> nn.EDMDenoiser:
    """A σ-conditioned EDM denoiser used as a score `(sigma, x)` (Karras et al. 2022)."""
    sd = sigma_data(cfg, d) if sd is None else sd
    return nn.EDMDenoiser(_score_net(cfg, d, key, fourier_scale=1.0), sigma_data=sd)


def _models(cfg: RunConfig, d: Data, sd: float | None) -> tuple[Any, ...]:
    family = cfg.family
    k1, k2 = jr.split(jr.key(cfg["train"]["seed"]))
    if family == "score":
        return (nn.EpsilonParam(_score_net(cfg, d, k1, 16.0), process(cfg).sigma),)
    if family == "gan":
        return _generator(cfg, d, k1), _discriminator(cfg, d, k2, time_conditioned=False)
    if family == "score-gan":
        return _generator(cfg, d, k1), edm_denoiser(cfg, d, k2, sd)
    if family == "discriminator-flow":
        return (_discriminator(cfg, d, k1, time_conditioned=True),)
    if family == "diffflow-gan":
        return (_generator(cfg, d, k1),)
    raise ConfigError(f"unknown family {family!r}")  # pragma: no cover - validated before


def build_models(cfg: RunConfig, d: Data, *, abstract: bool = False) -> tuple[Any, ...]:
    """The freshly initialised models of the family, in the order the trainer returns them:
    `score`: (score model,); `gan`: (G, D); `score-gan`: (G, generated score);
    `discriminator-flow`: (D,); `diffflow-gan`: (G,).

    With `abstract=True` the arrays are `jax.ShapeDtypeStruct`s (no initialisation is
    computed): enough for the `like` of `load_checkpoint`."""
    sd = sigma_data(cfg, d) if cfg.family == "score-gan" else None
    if abstract:
        return eqx.filter_eval_shape(lambda: _models(cfg, d, sd))
    return _models(cfg, d, sd)


def real_score_kind(cfg: RunConfig, d: Data) -> str:
    """`"exact"` or `"fit"`: `[model] real_score`, by default exact for a mixture."""
    kind = cfg["model"].get("real_score")
    if kind is None:
        return "exact" if d.law is not None else "fit"
    if kind == "exact" and d.law is None:
        raise ConfigError(
            f'{cfg.path}: `[model] real_score` = "exact" needs a Gaussian-mixture data set '
            f'({", ".join(MIXTURES)}); {cfg.data_name!r} has no exact score: use "fit".'
        )
    return kind


def exact_real_score(d: Data) -> SmoothedMixtureScore:
    assert d.law is not None
    return SmoothedMixtureScore(d.law)


def training_state_like(cfg: RunConfig, d: Data) -> Any:
    """The named training state the family's trainer checkpoints (a
    [`ScoreState`][gpm_sde.train.ScoreState], [`GANState`][gpm_sde.train.GANState], ...), as
    `jax.ShapeDtypeStruct`s: the `like` of `load_checkpoint`."""
    sd = sigma_data(cfg, d) if cfg.family == "score-gan" else None
    return eqx.filter_eval_shape(lambda: training_state(cfg, _models(cfg, d, sd)))


def training_state(cfg: RunConfig, models: tuple[Any, ...]) -> Any:
    """The initial named state of the family's trainer for `models` (the `<family>_init` of
    `gpm_sde.train` with the run's EMA; the optimiser state is Adam's, whatever its rate)."""
    family = cfg.family
    ema = cfg["train"].get("ema")
    if family == "score":
        return train.score_init(*models, ema=ema)
    if family == "gan":
        return train.gan_init(*models, ema=ema)
    if family == "score-gan":
        return train.score_gan_init(*models, ema=ema)
    if family == "discriminator-flow":
        return train.discriminator_flow_init(*models)
    return train.diffflow_gan_init(*models)


def models_from_state(cfg: RunConfig, state: Any) -> tuple[Any, ...]:
    """The models a trainer would return from its checkpointed named `state` (`state.models()`:
    with an EMA, the generator's or score model's average)."""
    models = state.models()
    return models if isinstance(models, tuple) else (models,)
