r"""`gpm-sde train CONFIG.toml`: run one of the training loops of `gpm_sde.train` from a TOML
configuration, and write the run directory:

- `config.toml`: a copy of the configuration;
- `checkpoint.eqx`: the trainer's checkpoint (models and optimiser states; `resume = true`
  continues from it);
- `models.eqx`: the trained models, read by `gpm-sde sample`;
- `real_score.eqx`: the fitted data score, for `score-gan` and `diffflow-gan` with
  `real_score = "fit"`;
- `history.npz`: the per-step losses of the trainer's history.
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import TRAINERS, ConfigError, RunConfig, describe_keys, load_config

CHECKPOINT = "checkpoint.eqx"
MODELS = "models.eqx"
REAL_SCORE = "real_score.eqx"
HISTORY = "history.npz"
CONFIG = "config.toml"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model family from a TOML configuration",
        description=textwrap.fill(
            "Train a model of one family (score, gan, score-gan, discriminator-flow, "
            "diffflow-gan) on a data set of gpm_sde.data, as described by a TOML "
            "configuration, and write the run directory: config.toml (a copy), "
            "checkpoint.eqx (the trainer's checkpoint), models.eqx (the trained models), "
            "history.npz (the losses) and, when the data score is fitted, real_score.eqx. "
            "Examples: examples/configs/*.toml.",
            96,
        ),
        epilog=describe_keys(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", metavar="CONFIG.toml", help="the run configuration (TOML)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="the run directory, overriding [output] dir (default: runs/<config stem>)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps, overriding [train] steps"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run directory's checkpoint (as [train] resume = true)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the training progress bars"
    )
    parser.set_defaults(run=run)


def configure(args: argparse.Namespace) -> RunConfig:
    """The configuration of `args.config` with the command-line overrides applied."""
    cfg = load_config(args.config)
    if args.out is not None:
        cfg = cfg.set("output", "dir", args.out)
    if args.steps is not None:
        if args.steps < 1:
            raise ConfigError(f"`--steps` must be >= 1, got {args.steps}.")
        cfg = cfg.set("train", "steps", args.steps)
    if args.resume:
        cfg = cfg.set("train", "resume", True)
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = configure(args)
    with precision(cfg):
        return train(cfg, progress=not args.no_progress)


class precision:
    """Set `jax_enable_x64` to `[train] x64` inside the block and restore it after, so that
    models are built, trained, saved and loaded in one dtype."""

    def __init__(self, cfg: RunConfig):
        self.x64 = bool(cfg["train"]["x64"])

    def __enter__(self) -> None:
        import jax

        self.saved = bool(jax.config.read("jax_enable_x64"))
        jax.config.update("jax_enable_x64", self.x64)

    def __exit__(self, *exc: Any) -> None:
        import jax

        jax.config.update("jax_enable_x64", self.saved)


def trainer_options(cfg: RunConfig, trainer: Any) -> dict[str, Any]:
    """The `[train]` keys that are set (not `None`) and that `trainer` accepts, read from its
    signature (its keywords and the loop options of `gpm_sde.train.LoopOptions`): keys left
    unset keep the trainer's own default, and a new trainer keyword needs only its schema
    entry in `config.KEYS`. `penalty = "none"` is passed as `None`."""
    from ..train import LoopOptions

    accepted = set(inspect.signature(trainer).parameters) | set(LoopOptions.__annotations__)
    accepted -= {"key", "steps"}
    opts = {n: v for n, v in cfg["train"].items() if n in accepted and v is not None}
    if opts.get("penalty") == "none":
        opts["penalty"] = None
    return opts


def _linear(start: float, end: float) -> Any:
    r"""The schedule $\sigma(s) = \sigma_0 + (\sigma_1 - \sigma_0)s$ on training time
    $s \in [0, 1)$."""
    from ..schedules import as_schedule

    return as_schedule(start) + as_schedule(end - start) * as_schedule(lambda s: s)


def _fit_real_score(cfg: RunConfig, d: Any, run_dir: Path, progress: bool) -> Any:
    """The data score `(sigma, x)`: exact for a mixture, or an EDM denoiser fitted by
    `fit_score` on `gpm_sde.edm()` (saved, and reused when resuming)."""
    import jax.random as jr

    from .. import processes
    from ..train import fit_score, load_checkpoint, save_checkpoint
    from . import build

    if build.real_score_kind(cfg, d) == "exact":
        return build.exact_real_score(d)
    model = build.edm_denoiser(cfg, d, jr.key(cfg["train"]["seed"] + 1))
    path = run_dir / REAL_SCORE
    if cfg["train"]["resume"] and path.exists():
        model, _ = load_checkpoint(path, model)
        return model
    steps = cfg["train"]["real_score_steps"] or cfg["train"]["steps"]
    sd = build.sigma_data(cfg, d)
    model, _ = fit_score(
        model,
        processes.edm(),
        d.train,
        jr.key(cfg["train"]["seed"] + 2),
        steps=steps,
        batch_size=cfg["train"]["batch_size"],
        weighting="edm",
        ema=0.999 if steps >= 1000 else None,
        loss_options={"sigma_data": sd},
        progress=progress,
    )
    save_checkpoint(path, model, trainer="gpm-sde/real_score", step=steps)
    return model


def train(cfg: RunConfig, *, progress: bool = True) -> int:
    """Train the run of `cfg`, write its directory, print a summary; return the exit code."""
    import jax.random as jr

    from .. import train as trainers
    from ..losses import gan_loss
    from . import build

    family = cfg.family
    run_dir = cfg.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    config_copy = run_dir / CONFIG
    if cfg.path.resolve() != config_copy.resolve():
        shutil.copyfile(cfg.path, config_copy)
    d = build.load_data(cfg)
    models = build.build_models(cfg, d)
    t = cfg["train"]
    key = jr.key(t["seed"])
    trainer = getattr(trainers, TRAINERS[family])
    opts: dict[str, Any] = {
        **trainer_options(cfg, trainer),
        "steps": t["steps"],
        "checkpoint": run_dir / CHECKPOINT,
        "progress": progress,
    }
    print(f"gpm-sde train: {family} on {cfg.data_name}, {t['steps']} steps -> {run_dir}")
    start = time.perf_counter()
    if family == "score":
        args: tuple[Any, ...] = (*models, build.process(cfg), d.train)
        opts["loss_options"] = {"t_min": t["t_min"]}
    elif family == "gan":
        args = (*models, d.train)
        opts["loss"] = cfg["model"]["loss"]
    elif family == "discriminator-flow":
        args = (*models, d.train)
        opts.update(event_shape=d.event_shape, loss=gan_loss(cfg["model"]["loss"]))
    else:  # score-gan, diffflow-gan: the generator(s), then the data score
        args = (*models, _fit_real_score(cfg, d, run_dir, progress))
        if t.get("sigma_final") is not None:
            opts["sigma"] = _linear(t.get("sigma") or 0.1, t["sigma_final"])
    *trained_models, history = trainer(*args, key, **opts)
    trained = tuple(trained_models)
    elapsed = time.perf_counter() - start
    trainers.save_checkpoint(
        run_dir / MODELS, trained, trainer=f"gpm-sde/{family}", step=t["steps"]
    )
    np.savez(run_dir / HISTORY, **_full_history(run_dir / HISTORY, history, t["resume"]))
    _summary(cfg, run_dir, history, elapsed)
    return 0


def _full_history(path: Path, history: dict[str, np.ndarray], resume: bool) -> dict[str, Any]:
    """The history of this call, preceded, when resuming, by the saved history of the steps
    before it (so `history.npz` always covers the whole run)."""
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in history.items()}
    if not (resume and path.exists()):
        return arrays
    with np.load(path) as old:
        first = int(arrays["step"][0]) if arrays["step"].size else np.inf
        keep = old["step"] < first
        if set(old.files) != set(arrays):
            return arrays
        return {k: np.concatenate([old[k][keep], arrays[k]]) for k in arrays}


def _summary(cfg: RunConfig, run_dir: Path, history: dict[str, np.ndarray], elapsed: float) -> None:
    steps = history.get("step", np.zeros(0))
    ran = f"steps {int(steps[0])}-{int(steps[-1])}" if steps.size else "no new steps (resumed)"
    print(f"trained {cfg.family} ({TRAINERS[cfg.family]}): {ran} in {elapsed:.1f} s")
    tail = max(1, steps.size // 10)
    for name, values in history.items():
        if name != "step" and values.size:
            print(f"  {name}: {float(np.mean(values[-tail:])):.4g} (mean of the last {tail} steps)")
    for name in (CONFIG, CHECKPOINT, MODELS, REAL_SCORE, HISTORY):
        if (run_dir / name).exists():
            print(f"  wrote {run_dir / name}")
    print(f"sample with: gpm-sde sample {run_dir}")
