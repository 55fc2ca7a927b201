r"""Scores $\nabla_x \log p(x)$: exact ones for mixture data, smoothed and annealed data scores,
mean-field estimates from the cloud, and the score difference from a discriminator.

A *pointwise score* is a callable `score(t, x)` on one point `x: (*event,)`; a *cloud score*
([`AbstractCloudScore`][gpm_sde.scores.AbstractCloudScore]) sees the whole cloud.
"""

from ._adapters import (
    BatchedScore as BatchedScore,
    DiscreteEpsModel as DiscreteEpsModel,
    DiscreteVPScore as DiscreteVPScore,
    PredictionScore as PredictionScore,
    from_batched as from_batched,
    from_denoiser as from_denoiser,
    from_eps as from_eps,
    from_eps_discrete as from_eps_discrete,
    from_v as from_v,
    from_v_discrete as from_v_discrete,
    from_x0 as from_x0,
    from_x0_discrete as from_x0_discrete,
    vp_score_from_discrete as vp_score_from_discrete,
)
from ._cloud import (
    AbstractCloudScore as AbstractCloudScore,
    AbstractTimeChangedScore as AbstractTimeChangedScore,
    check_score as check_score,
    couples_particles as couples_particles,
    is_cloud_score as is_cloud_score,
    on_cloud as on_cloud,
)
from ._discriminator import DiscriminatorScoreDifference as DiscriminatorScoreDifference
from ._exact import (
    MixtureMarginalScore as MixtureMarginalScore,
    TimeReversedScore as TimeReversedScore,
)
from ._guidance import (
    ClassifierFreeGuidedScore as ClassifierFreeGuidedScore,
    ClassifierGuidedScore as ClassifierGuidedScore,
    Conditioned as Conditioned,
    MixtureComponentLogPosterior as MixtureComponentLogPosterior,
    bind_label as bind_label,
    classifier_free_guidance as classifier_free_guidance,
    classifier_guidance as classifier_guidance,
)
from ._kernel import (
    KernelScore as KernelScore,
    SmoothedCloudScore as SmoothedCloudScore,
    default_block as default_block,
    kde_bandwidth as kde_bandwidth,
    kernel_score_blocked as kernel_score_blocked,
)
from ._smoothed import AnnealedScore as AnnealedScore, SmoothedMixtureScore as SmoothedMixtureScore
