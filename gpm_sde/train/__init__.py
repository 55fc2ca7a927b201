r"""Training loops (optax) for every model family: score models, GANs, Score GAN,
Discriminator Flow and DiffFlow-GAN.

Every loop is a function that takes the models, the data and a PRNG key, and returns the
trained models and a history (`dict` of per-step NumPy arrays). All share
[`run_loop`][gpm_sde.train.run_loop]: steps run in jitted chunks under `lax.scan`, a tqdm
progress bar shows the losses, `checkpoint=PATH` saves with `eqx.tree_serialise_leaves` (no
pickle) and `resume=True` continues bit-for-bit where it stopped, and a non-finite loss stops
the run with [`TrainingDiverged`][gpm_sde.train.TrainingDiverged], keeping the last good
state in the checkpoint.
"""

from ._common import partition_trainable as partition_trainable
from .checkpoint import (
    CheckpointError as CheckpointError,
    load_checkpoint as load_checkpoint,
    read_checkpoint_header as read_checkpoint_header,
    save_checkpoint as save_checkpoint,
)
from .diffflow_gan import train_diffflow_gan as train_diffflow_gan
from .discriminator_flow import (
    discriminator_flow_sample as discriminator_flow_sample,
    field_kind as field_kind,
    train_discriminator_flow as train_discriminator_flow,
)
from .gan import train_gan as train_gan
from .loop import (
    LoopOptions as LoopOptions,
    TrainingDiverged as TrainingDiverged,
    run_loop as run_loop,
)
from .score import fit_score as fit_score
from .score_gan import train_score_gan as train_score_gan
