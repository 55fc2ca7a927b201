r"""Losses as pure functions: denoising score matching, the DDPM noise-prediction loss, GAN
losses (minimax, non-saturating, Wasserstein, least squares, hinge, f-GAN), the
discriminator regularisers (R1, WGAN-GP, weight clipping), the Int-PM generator loss, and the
autoencoder objectives (the ELBO, the IWAE bound, the VQ-VAE loss)."""

from ._classifier import noisy_classifier_loss as noisy_classifier_loss
from ._elbo import elbo as elbo, gaussian_kl as gaussian_kl, iwae_bound as iwae_bound
from ._gan import (
    FGAN as FGAN,
    AbstractFDivergence as AbstractFDivergence,
    AbstractGANLoss as AbstractGANLoss,
    HingeGAN as HingeGAN,
    JensenShannonDivergence as JensenShannonDivergence,
    KLDivergence as KLDivergence,
    LeastSquaresGAN as LeastSquaresGAN,
    MinimaxGAN as MinimaxGAN,
    NonSaturatingGAN as NonSaturatingGAN,
    PearsonChi2Divergence as PearsonChi2Divergence,
    ReverseKLDivergence as ReverseKLDivergence,
    WassersteinGAN as WassersteinGAN,
    f_divergence as f_divergence,
    gan_loss as gan_loss,
)
from ._int_pm import int_pm_loss as int_pm_loss
from ._label_dropout import drop_labels as drop_labels
from ._penalties import (
    clip_weights as clip_weights,
    gradient_penalty as gradient_penalty,
    r1_penalty as r1_penalty,
)
from ._score_matching import ddpm_eps_loss as ddpm_eps_loss, dsm_loss as dsm_loss
from ._vq import codebook_perplexity as codebook_perplexity, vq_vae_loss as vq_vae_loss
