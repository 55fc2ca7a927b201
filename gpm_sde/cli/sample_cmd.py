r"""`gpm-sde sample RUN_DIR_OR_CHECKPOINT`: rebuild the models of a run from its saved
configuration, load their weights, draw samples and write them as `.npy` and `.png`.

- score models: the reverse SDE from the prior
  ([`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample], member $\lambda$ = `lam`·g);
- generators (`gan`, `score-gan`, `diffflow-gan`): $G(z)$, $z \sim \mathcal{N}(0, I)$;
- `discriminator-flow`: the flow of the discriminator from $\mathcal{N}(0, I)$
  ([`discriminator_flow_sample`][gpm_sde.train.discriminator_flow_sample]).

The weights come from `models.eqx` (the end of training) or, when the path is the trainer's
`checkpoint.eqx`, from the training state it holds (to sample a run in progress).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_atomic
from .config import INT_MAX, SEED_MAX, TRAINERS, ConfigError, RunConfig, load_config
from .figures import MISSING, samples_figure
from .train_cmd import CHECKPOINT, CONFIG, MODELS, check_output_dir, precision


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="draw samples from a trained run",
        description=(
            "Rebuild the models of a run from its config.toml, load the weights (models.eqx, "
            "or a trainer checkpoint), draw samples and write them as .npy and .png. Prints a "
            "quality metric: the MMD to the data (2-D data) or the digits-FD to the test "
            "split (digits)."
        ),
    )
    parser.add_argument(
        "path",
        metavar="RUN_DIR_OR_CHECKPOINT",
        help="a run directory written by `gpm-sde train`, or a checkpoint file in one "
        "(models.eqx or checkpoint.eqx)",
    )
    parser.add_argument(
        "--n", type=int, default=None, help="number of samples (default: [sample] n, 2000)"
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="the .npy file to write (images are clipped to [-1, 1], the data range); the "
        "figure goes next to it as .png (default: RUN_DIR/samples.npy)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="PRNG seed of the samples (default: [sample] seed)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="solver steps for score models (default: [sample] steps, 500)",
    )
    parser.set_defaults(run=run)


def locate(path: str | Path) -> tuple[Path, Path]:
    """`(config, checkpoint)` of a run directory or of a checkpoint file in one."""
    path = Path(path)
    if path.is_dir():
        checkpoint = path / MODELS
        if not checkpoint.exists():
            checkpoint = path / CHECKPOINT
        if not checkpoint.exists():
            raise ConfigError(
                f"{str(path)!r} holds neither {MODELS} nor {CHECKPOINT}: pass a run directory "
                f"written by `gpm-sde train`, or a checkpoint file."
            )
        run_dir = path
    elif path.is_file():
        checkpoint, run_dir = path, path.parent
    else:
        raise ConfigError(f"{str(path)!r} does not exist: pass a run directory or a checkpoint.")
    config = run_dir / CONFIG
    if not config.exists():
        raise ConfigError(
            f"{str(run_dir)!r} has no {CONFIG}: `gpm-sde sample` rebuilds the models from the "
            f"configuration that `gpm-sde train` copies into the run directory."
        )
    return config, checkpoint


def load_models(cfg: RunConfig, checkpoint: Path, d: Any) -> tuple[tuple[Any, ...], int]:
    """The trained models of the run and the step they were saved at."""
    from ..train import CheckpointError, load_checkpoint, read_checkpoint_header
    from . import build

    trainer = read_checkpoint_header(checkpoint)["trainer"]
    if trainer == f"gpm-sde/{cfg.family}":
        models, step = load_checkpoint(checkpoint, build.build_models(cfg, d, abstract=True))
        return tuple(models), step
    if trainer == TRAINERS[cfg.family]:
        state, step = load_checkpoint(checkpoint, build.training_state_like(cfg, d))
        return build.models_from_state(cfg, state), step
    raise CheckpointError(
        f"`checkpoint` {str(checkpoint)!r} was written by {trainer!r}, which does not hold the "
        f"models of family {cfg.family!r}; pass the run's {MODELS} or {CHECKPOINT}."
    )


def draw(cfg: RunConfig, models: tuple[Any, ...], d: Any, key: Any, n: int, steps: int) -> Any:
    """`n` samples of the trained models."""
    import jax
    import jax.random as jr

    from ..losses import gan_loss
    from ..samplers import reverse_sde_sample
    from ..train import discriminator_flow_sample, field_kind
    from . import build

    family = cfg.family
    if family == "score":
        process = build.process(cfg)
        c = cfg["sample"]["lam"]  # λ = c·g: None is the reverse SDE, 0.0 the PF-ODE
        lam: Any = None if c == 1.0 else 0.0 if c == 0.0 else _scaled_g(process, c)
        return reverse_sde_sample(process, models[0], key, n, d.event_shape, steps=steps, lam=lam).x
    if family == "discriminator-flow":
        t = cfg["train"]
        names = ("t1", "flow_steps", "eta", "entropy_reg")
        kwargs = {k: t[k] for k in names if t.get(k) is not None}
        y0 = jr.normal(key, (n, *d.event_shape))
        kind = field_kind(gan_loss(cfg["model"]["loss"]))
        noise_key = jr.fold_in(key, 1)  # for entropy_reg > 0
        return discriminator_flow_sample(models[0], y0, kind=kind, key=noise_key, **kwargs)
    g = models[0]
    z = jr.normal(key, (n, g.latent_dim))
    return jax.vmap(g)(z)


def _scaled_g(process: Any, c: float) -> Any:
    r"""$\lambda(s) = c\,g(T - s)$."""

    def lam(s: Any) -> Any:
        return c * process.diffusion(process.T - s)

    return lam


def quality(d: Any, x: np.ndarray) -> str:
    """A one-line quality metric of the samples against the data."""
    import jax.numpy as jnp
    import jax.random as jr

    from ..metrics import digits_fd, mmd

    if d.is_image:
        if x.shape[0] < 2:
            return "digits-FD: needs at least 2 samples"
        from ..data import digits

        test, _ = digits("test")
        fd = float(digits_fd(jnp.asarray(x, test.dtype), test))
        return f"digits-FD to the test split: {fd:.3g} (lower is better)"
    if x.shape[0] < 2:
        return "MMD: needs at least 2 samples"
    ref = d.reference(jr.key(777), x.shape[0])
    ref2 = d.reference(jr.key(778), x.shape[0])
    xs = jnp.asarray(x, ref.dtype)
    value = float(jnp.sqrt(jnp.maximum(mmd(xs, ref, biased=True), 0.0)))
    floor = float(jnp.sqrt(jnp.maximum(mmd(ref2, ref, biased=True), 0.0)))
    return f"MMD to the data: {value:.3g} (two data samples of this size: {floor:.3g})"


def run(args: argparse.Namespace) -> int:
    for name, low, high in (("n", 1, INT_MAX), ("steps", 1, INT_MAX), ("seed", 0, SEED_MAX)):
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            raise ConfigError(f"`--{name}` must be in [{low}, {high}], got {value}.")
    if args.out is not None:
        check_out_file(Path(args.out))
    config, checkpoint = locate(args.path)
    cfg = load_config(config)
    with precision(cfg):
        return sample(cfg, checkpoint, args.n, args.out, args.seed, args.steps)


def check_out_file(out: Path) -> None:
    """Refuse a `--out` file that cannot be written, before anything runs."""
    if not str(out) or "\x00" in str(out):
        raise ConfigError(f"`--out` must be a file path, got {str(out)!r}.")
    if out.is_dir():
        raise ConfigError(f"`--out` {str(out)!r} is a directory; pass a .npy file path.")
    check_output_dir(out.parent, "the folder of `--out`")


def sample(
    cfg: RunConfig,
    checkpoint: Path,
    n: int | None = None,
    out: str | Path | None = None,
    seed: int | None = None,
    steps: int | None = None,
) -> int:
    """Draw the samples of a run and write them; return the exit code."""
    import jax
    import jax.random as jr

    from . import build

    s = cfg["sample"]
    count: int = s["n"] if n is None else n
    seed_: int = s["seed"] if seed is None else seed
    steps_: int = (s.get("steps") or 500) if steps is None else steps
    out_path = Path(out) if out is not None else checkpoint.parent / "samples.npy"
    if out_path.suffix != ".npy":
        out_path = out_path.with_suffix(out_path.suffix + ".npy")
    d = build.load_data(cfg)
    models, step = load_models(cfg, checkpoint, d)
    start = time.perf_counter()
    x = np.asarray(jax.block_until_ready(draw(cfg, models, d, jr.key(seed_), count, steps_)))
    elapsed = time.perf_counter() - start
    if d.is_image:  # the data range, as for any image model
        x = np.clip(x, -1.0, 1.0)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, x)
    write_atomic(out_path, buffer.getvalue())  # never a partial samples file
    where = f"{checkpoint}, step {step}"
    print(f"gpm-sde sample: {count} samples of {cfg.family} ({where}) in {elapsed:.1f} s")
    try:
        print(f"  {quality(d, x)}")
    except ValueError as err:  # e.g. a diverged model: the samples are still written
        print(f"  no quality metric: {err}")
    print(f"  wrote {out_path}")
    reference = None if d.is_image else np.asarray(d.reference(jr.key(779), min(count, 5000)))
    title = f"{cfg.family} on {cfg.data_name}, step {step}"
    figure = samples_figure(x, reference, title, out_path.with_suffix(".png"))
    print(f"  wrote {figure}" if figure is not None else f"  {MISSING}")
    return 0
