r"""Presets: the keyword arguments that make a trainer run the algorithm of a published
codebase, so that `train_score_gan(G, S, real_score, key, steps=n, **official_score_gan())`
is the GPM authors' Score GAN.

Each preset is a plain `dict` of keywords of the trainer (nothing hidden): print it to see the
settings, or override any of them with `{**official_score_gan(), "batch_size": 256}`.
"""

from __future__ import annotations

from typing import Any

import optax

from .._checks import check_positive
from ..schedules import KarrasSigma


def official_score_gan(lr: float = 2e-4) -> dict[str, Any]:
    r"""The keywords of [`train_score_gan`][gpm_sde.train.train_score_gan] (and of
    [`score_gan_make_step`][gpm_sde.train.score_gan_make_step], less the optimisers) that
    reproduce the Score GAN of the GPM authors' code (Franceschi et al. 2023;
    github.com/White-Link/gpm, `gpm/models/score_gan/score_gan.py` and
    `config/score_gan/gaussians/config.yaml`):

    - the field `gradient = w_gen σ s_gen − w_data σ s_data` (weight σ):
      `field_weight="sigma"`;
    - evaluated at the noised points `x + σ ε`: `field_at="noised"`;
    - `sample_noise_level` with `sigma_min`, `sigma_max`, `rho` = 0.1, 10, 3 (the Karras
      ρ-ramp at a uniform position, one σ per point): `sigma_law=KarrasSigma(0.1, 10.0, 3.0)`;
    - `forward_score_noise`, the plain `‖D(x + σε; σ) − x‖²`: `score_loss="denoiser"`;
    - `nb_score_steps` = 10: `score_steps=10`;
    - `weight_data`, `weight_gen`, `gen_loss_scale` = 1, 1, 1: `weight_data`, `weight_gen`,
      `g_loss_scale`;
    - `batch_size` = 128: `batch_size=128`;
    - `score_optimizer`, `gen_optimizer` = Adam(2e-4) with PyTorch's β = (0.9, 0.999) and
      ε = 1e-8: `s_optimizer` and `g_optimizer` = `optax.adam(lr)`.

    Their `optim.nb_steps` counts score steps: 31,500 of them are `steps=3150` generator steps
    here. The networks are the user's: theirs are MLPs of width 512 and depth 4 (ReLU
    generator from a 128-d latent; EDM-preconditioned LeakyReLU score networks with 128
    Fourier features, `sigma_data = 0.5`), the data score pre-trained by EDM.
    """
    check_positive("lr", lr, fix="pass e.g. lr=2e-4")
    return {
        "batch_size": 128,
        "score_steps": 10,
        "sigma_law": KarrasSigma(0.1, 10.0, 3.0),
        "field_at": "noised",
        "field_weight": "sigma",
        "score_loss": "denoiser",
        "weight_data": 1.0,
        "weight_gen": 1.0,
        "g_loss_scale": 1.0,
        "g_optimizer": optax.adam(lr),
        "s_optimizer": optax.adam(lr),
    }


def official_discriminator_flow(lr: float = 2e-4) -> dict[str, Any]:
    r"""The keywords of [`train_discriminator_flow`][gpm_sde.train.train_discriminator_flow]
    that reproduce the Discriminator Flow of the GPM authors' code (Franceschi et al. 2023;
    github.com/White-Link/gpm, `gpm/models/discr_flow/base.py` and
    `config/discr_flow/gaussians/config.yaml`):

    - `model` = `vanilla` (the non-saturating loss): `loss="nonsaturating"`;
    - `nb_steps`, `eta` = 56, 20, the step `z + eta * grad / 56` with D's time `k / 56`:
      `flow_steps=56`, `eta=20.0`, `t1=1.0`;
    - `entropy_reg` = 0: `entropy_reg=0.0`; `grad_penalty` = 0: `penalty=None`;
    - one discriminator step per generated batch of 128, each particle paired with one data
      point: `d_steps=1`, `n_particles=128`, `batch_size=128`;
    - `optimizer` = Adam(2e-4, β = (0.5, 0.999)): `optimizer=optax.adam(lr, b1=0.5)`.

    Their 4000 `optim.nb_steps` are `steps=4000` here. Initialise the discriminator as they do
    with [`normal_init`][gpm_sde.nn.normal_init] ($\mathcal{N}(0, 0.02^2)$ weights, zero
    biases); theirs is an MLP of width 512 and depth 4 (LeakyReLU) with 128 Fourier features
    of the time concatenated to the input. Generate with
    `discriminator_flow_sample(D, y0, flow_steps=56, eta=20.0)`.
    """
    check_positive("lr", lr, fix="pass e.g. lr=2e-4")
    return {
        "loss": "nonsaturating",
        "flow_steps": 56,
        "eta": 20.0,
        "t1": 1.0,
        "entropy_reg": 0.0,
        "penalty": None,
        "d_steps": 1,
        "n_particles": 128,
        "batch_size": 128,
        "optimizer": optax.adam(lr, b1=0.5, b2=0.999),
    }
