r"""Training (optax and equinox) for every model family: score models (class-conditional
too), noisy classifiers for guidance, GANs, Score GAN, Discriminator Flow, DiffFlow-GAN, and
the autoencoders (VAE, VQ-VAE) whose latent codes latent models train on.

Each family follows the optax/equinox idiom, with one naming pattern:

- `<Family>State`, an `eqx.Module` with named fields (the models, their optimiser states, the
  EMA, the step count, and the static mask of what trains);
- `<family>_init(models, optimizers, *, ema, trainable)`, the initial state;
- `<family>_make_step(options...)`, a pure jittable `step(state, key) -> (state, metrics)`
  with `metrics` a dict of scalars;
- the trainer (`fit_score`, `train_gan`, ...), a thin loop over them: it returns the trained
  models and a history (`dict` of per-step NumPy arrays).

The loops share [`run_loop`][gpm_sde.train.run_loop]: steps run in jitted chunks under
`lax.scan` (on the CPU, a step with a convolution runs as one jitted call a step instead,
since XLA runs convolutions inside a loop body an order of magnitude slower; `scan=` forces
either), a tqdm progress bar shows the losses, `checkpoint=PATH` saves the named state with
`eqx.tree_serialise_leaves` (no pickle) and `resume=True` continues bit-for-bit where it
stopped, and a non-finite loss stops the run with
[`TrainingDiverged`][gpm_sde.train.TrainingDiverged], keeping the last good state in the
checkpoint.

What trains is explicit: every `init` and trainer takes `trainable=` (a predicate, or a pytree
of bools; see [`Trainable`][gpm_sde.train.Trainable]), by default
[`default_trainable`][gpm_sde.train.default_trainable].

Presets give a trainer the settings of a published codebase as plain keyword dicts:
[`official_score_gan`][gpm_sde.train.official_score_gan] and
[`official_discriminator_flow`][gpm_sde.train.official_discriminator_flow] are the GPM
authors' algorithms.
"""

from ._checkpoint import (
    CheckpointError as CheckpointError,
    load_checkpoint as load_checkpoint,
    read_checkpoint_header as read_checkpoint_header,
    save_checkpoint as save_checkpoint,
)
from ._classifier import (
    ClassifierState as ClassifierState,
    classifier_init as classifier_init,
    classifier_make_step as classifier_make_step,
    fit_classifier as fit_classifier,
)
from ._common import (
    EMA as EMA,
    Trainable as Trainable,
    as_labeled_sampler as as_labeled_sampler,
    default_trainable as default_trainable,
    ema_init as ema_init,
    ema_update as ema_update,
    partition_trainable as partition_trainable,
    trainable_mask as trainable_mask,
)
from ._ddgan import (
    DDGANState as DDGANState,
    ddgan_init as ddgan_init,
    ddgan_make_step as ddgan_make_step,
    train_ddgan as train_ddgan,
)
from ._diffflow_gan import (
    DiffFlowGANState as DiffFlowGANState,
    diffflow_gan_init as diffflow_gan_init,
    diffflow_gan_make_step as diffflow_gan_make_step,
    train_diffflow_gan as train_diffflow_gan,
)
from ._discriminator_flow import (
    DiscriminatorFlowState as DiscriminatorFlowState,
    discriminator_flow_init as discriminator_flow_init,
    discriminator_flow_make_step as discriminator_flow_make_step,
    discriminator_flow_sample as discriminator_flow_sample,
    field_kind as field_kind,
    train_discriminator_flow as train_discriminator_flow,
)
from ._distributed import (
    replicate as replicate,
    save_checkpoint_once as save_checkpoint_once,
    sharded_sampler as sharded_sampler,
)
from ._gan import (
    GANState as GANState,
    InstanceNoise as InstanceNoise,
    gan_init as gan_init,
    gan_make_step as gan_make_step,
    train_gan as train_gan,
)
from ._loop import (
    LoopOptions as LoopOptions,
    TrainingDiverged as TrainingDiverged,
    run_loop as run_loop,
)
from ._presets import (
    official_discriminator_flow as official_discriminator_flow,
    official_score_gan as official_score_gan,
)
from ._score import (
    ScoreState as ScoreState,
    fit_score as fit_score,
    score_init as score_init,
    score_make_step as score_make_step,
)
from ._score_gan import (
    ScoreGANState as ScoreGANState,
    score_gan_init as score_gan_init,
    score_gan_make_step as score_gan_make_step,
    train_score_gan as train_score_gan,
)
from ._vae import (
    VAEState as VAEState,
    VQVAEState as VQVAEState,
    fit_vae as fit_vae,
    fit_vq_vae as fit_vq_vae,
    vae_init as vae_init,
    vae_make_step as vae_make_step,
    vq_vae_init as vq_vae_init,
    vq_vae_make_step as vq_vae_make_step,
)
