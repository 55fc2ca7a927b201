r"""Neural networks (equinox): time/σ-conditioned score networks, generators, discriminators,
and the score parameterisations that turn a raw network output into a score.

Every network is a final `eqx.Module` acting on **one point** (vmap it over a batch):

- score networks are called as `net(t, x)`, with `t` a scalar time or noise level; built with
  `num_classes=K` ([`ScoreMLP`][gpm_sde.nn.ScoreMLP], [`UNet8`][gpm_sde.nn.UNet8]) they are
  class-conditional, `net(t, x, y)`, with the null label `K` of classifier-free training;
- noisy classifiers as `clf(t, x)`, returning the logits `(K,)` of $p_t(y \mid x)$
  ([`NoisyClassifierMLP`][gpm_sde.nn.NoisyClassifierMLP]);
- generators as `G(z)` on one latent;
- discriminators as `D(x)`, or `D(s, x)` when built with `time_conditioned=True`, returning a
  scalar logit;
- the Denoising Diffusion GAN pair as `G(x_n, z, n)` and `D(x_prev, x_n, n)` on a 1-based
  step `n` ([`DDGANGenerator`][gpm_sde.nn.DDGANGenerator] and
  [`DDGANUNet8`][gpm_sde.nn.DDGANUNet8] with their discriminators);
- autoencoder parts as `encoder(x) -> (mean, log_std)` (or a latent `z_e` for VQ-VAE) and
  `decoder(z)` (the decoded mean), with `decoder.log_prob(z, x)` $= \log p_\theta(x \mid z)$;
  [`latent_codes`][gpm_sde.nn.latent_codes] and [`decode_latents`][gpm_sde.nn.decode_latents]
  move a dataset into latent space and a latent cloud back.

A parameterisation wrapper ([`EpsilonParam`][gpm_sde.nn.EpsilonParam],
[`X0Param`][gpm_sde.nn.X0Param], [`ScoreParam`][gpm_sde.nn.ScoreParam],
[`EDMDenoiser`][gpm_sde.nn.EDMDenoiser]) is itself a pointwise score `(t, x) -> ∇log p_t(x)`,
ready for [`reverse`][gpm_sde.reverse] and the losses of `gpm_sde.losses`.
"""

from ._classifier import (
    ClassifierLogProb as ClassifierLogProb,
    NoisyClassifierMLP as NoisyClassifierMLP,
    classifier_log_prob as classifier_log_prob,
)
from ._conv import ConvDiscriminator8 as ConvDiscriminator8, ConvGenerator8 as ConvGenerator8
from ._ddgan import DDGANDiscriminator as DDGANDiscriminator, DDGANGenerator as DDGANGenerator
from ._ddgan_conv import (
    DDGANConvDiscriminator8 as DDGANConvDiscriminator8,
    DDGANUNet8 as DDGANUNet8,
)
from ._embedding import FourierEmbedding as FourierEmbedding
from ._init import normal_init as normal_init
from ._mlp import (
    MLPDiscriminator as MLPDiscriminator,
    MLPGenerator as MLPGenerator,
    ScoreMLP as ScoreMLP,
)
from ._param import (
    EDMDenoiser as EDMDenoiser,
    EpsilonParam as EpsilonParam,
    ScoreParam as ScoreParam,
    X0Param as X0Param,
    edm_preconditioning as edm_preconditioning,
)
from ._spectral import FrozenState as FrozenState
from ._unet import UNet8 as UNet8
from ._vae import (
    BernoulliDecoder as BernoulliDecoder,
    GaussianDecoder as GaussianDecoder,
    GaussianEncoder as GaussianEncoder,
    MLPEncoder as MLPEncoder,
    decode_latents as decode_latents,
    latent_codes as latent_codes,
)
from ._vq import CodebookEMA as CodebookEMA, VectorQuantizer as VectorQuantizer
