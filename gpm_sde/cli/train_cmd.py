r"""`gpm-sde train CONFIG.toml`: run one of the training loops of `gpm_sde.train` from a TOML
configuration, and write the run directory:

- `config.toml`: the resolved configuration (every key, defaults and overrides included, and
  the package versions);
- `checkpoint.eqx`: the trainer's checkpoint (models and optimiser states; `--resume`
  continues from it);
- `models.eqx`: the trained models, read by `gpm-sde sample`;
- `real_score.eqx`: the fitted data score, for `score-gan` and `diffflow-gan` with
  `real_score = "fit"`;
- `history.npz`: the per-step losses of the whole run, written with every checkpoint.

Everything (the configuration, the overrides, the output directory and, when resuming, the
checkpoint) is checked before anything is written. An existing run is continued only by
`--resume` (with the same configuration, or `--force`) and replaced only by `--overwrite`; a
lock file (`.lock`, holding the pid) refuses a second `train` into the same run.
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_atomic
from .config import (
    TRAINERS,
    ConfigError,
    RunConfig,
    describe_keys,
    load_config,
    parse_override,
)

CHECKPOINT = "checkpoint.eqx"
MODELS = "models.eqx"
REAL_SCORE = "real_score.eqx"
HISTORY = "history.npz"
CONFIG = "config.toml"
LOCK = ".lock"

RESUMABLE = ("train.steps", "train.resume", "train.checkpoint_every", "train.chunk", "output.dir")
"""The keys `--resume` may change without `--force` (with every `[sample]` key): how long and
how the run goes on, not what it trains."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model family from a TOML configuration",
        description=textwrap.fill(
            "Train a model of one family (score, gan, score-gan, discriminator-flow, "
            "diffflow-gan) on a data set of gpm_sde.data, as described by a TOML "
            "configuration, and write the run directory: config.toml (the resolved "
            "configuration), checkpoint.eqx (the trainer's checkpoint), models.eqx (the "
            "trained models), history.npz (the losses, saved with every checkpoint) and, when "
            "the data score is fitted, real_score.eqx. Everything is checked before anything "
            "is written; an existing run is continued only by --resume and replaced only by "
            "--overwrite. Exit codes: 0 done, 2 refused or failed (one-line message), 130 "
            "interrupted (the last checkpoint is kept: --resume continues). "
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
        "--set",
        metavar="TABLE.KEY=VALUE",
        action="append",
        default=[],
        help="override one configuration key (repeatable), e.g. --set train.lr=1e-3 or "
        "--set model.process=ve; the value is read as TOML, or as a string",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the output directory from its checkpoint (as [train] "
        "resume = true); refused if the configuration differs from the run's config.toml in "
        "anything but the steps, checkpoint_every, chunk and [sample] keys, unless --force",
    )
    mode.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in the output directory (deleting its files); without it, "
        "training into a directory that holds a run is refused",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --resume: continue even though the configuration differs from the run's "
        "(the differences are printed)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the training progress bars"
    )
    parser.set_defaults(run=run)


def configure(args: argparse.Namespace) -> RunConfig:
    """The configuration of `args.config` with the command-line overrides applied, each
    validated like a key of the file."""
    overrides = [parse_override(text) for text in args.set]
    if args.out is not None:
        overrides.append(("output", "dir", args.out, "`--out`"))
    if args.steps is not None:
        overrides.append(("train", "steps", args.steps, "`--steps`"))
    if args.resume:
        overrides.append(("train", "resume", True, "`--resume`"))
    return load_config(args.config, overrides)


def run(args: argparse.Namespace) -> int:
    cfg = configure(args)
    run_dir = cfg.run_dir()
    if args.force and not cfg["train"]["resume"]:
        raise ConfigError("`--force` only applies with `--resume`.")
    if args.overwrite and cfg["train"]["resume"]:
        raise ConfigError("`--overwrite` cannot be combined with `[train] resume = true`.")
    resume = check_run_dir(cfg, run_dir, overwrite=args.overwrite, force=args.force)
    with precision(cfg):
        if resume:
            check_checkpoint(cfg, run_dir)
        try:
            with RunLock(run_dir):
                # The directory may have changed between the checks and the lock.
                again = check_run_dir(
                    cfg, run_dir, overwrite=args.overwrite, force=args.force, locked=True
                )
                if again != resume:
                    raise ConfigError(
                        f"the run directory {str(run_dir)!r} changed while `gpm-sde train` "
                        f"started; run the command again."
                    )
                if args.overwrite:
                    _clear(run_dir)
                write_atomic(run_dir / CONFIG, cfg.to_toml(versions()).encode("utf-8"))
                return train(cfg, progress=not args.no_progress)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(
                f"interrupted; {str(run_dir)!r} keeps its last checkpoint: continue with "
                f"`gpm-sde train {run_dir / CONFIG} --resume`."
            ) from None


def _entries(run_dir: Path) -> list[str]:
    """The names in `run_dir` other than the lock file."""
    return sorted(p.name for p in run_dir.iterdir() if p.name != LOCK)


def check_output_dir(run_dir: Path, what: str = "the run directory") -> None:
    """Refuse an output directory that cannot be created or written, before anything is."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{what} {str(run_dir)!r} (`--out`) is a file, not a directory.")
    parent = run_dir
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(
            f"{what} {str(run_dir)!r} (`--out`) cannot be created: {str(parent)!r} is a file."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{what} {str(run_dir)!r} (`--out`) cannot be written: {str(parent)!r} is not "
            f"writable; pass another `--out`."
        )


def check_run_dir(
    cfg: RunConfig, run_dir: Path, *, overwrite: bool, force: bool, locked: bool = False
) -> bool:
    """Apply the rules of an existing run directory; return whether the run is resumed.
    Reads only: a refusal leaves the directory as it was. `locked`: the caller holds the
    lock (the check is repeated under it, silently, in case the directory changed)."""
    say = (lambda text: None) if locked else print
    check_output_dir(run_dir)
    if not run_dir.is_dir() or not _entries(run_dir):
        if cfg["train"]["resume"]:
            say(f"gpm-sde train: nothing to resume in {str(run_dir)!r}: a new run.")
        return False
    if not locked:
        RunLock(run_dir).check()
    if not (run_dir / CONFIG).is_file():
        raise ConfigError(
            f"the run directory {str(run_dir)!r} (`--out`) is not empty and holds no gpm-sde "
            f"run (no {CONFIG}); pass a new or empty directory."
        )
    if not cfg["train"]["resume"]:
        if overwrite:
            return False
        raise ConfigError(
            f"the run directory {str(run_dir)!r} (`--out`) already holds a run; pass `--resume` "
            f"to continue it, `--overwrite` to replace it, or another `--out`."
        )
    try:
        saved = load_config(run_dir / CONFIG)
    except ConfigError as err:
        if not force:
            raise ConfigError(
                f"`--resume`: the run's configuration cannot be read ({err}); pass `--force` to "
                f"continue with the new configuration."
            ) from None
        say(f"gpm-sde train: --force: the run's configuration cannot be read ({err}).")
        return True
    ignore = RESUMABLE + tuple(f"sample.{k}" for k in cfg["sample"])
    diffs = cfg.differences(saved, ignore=ignore)
    if diffs and not force:
        raise ConfigError(
            f"`--resume`: the configuration differs from the run's {run_dir / CONFIG} in "
            f"{'; '.join(diffs)}; pass `--force` to continue with the new values, "
            f"`--overwrite` to start afresh, or the run's own {CONFIG}."
        )
    if diffs:
        say(f"gpm-sde train: --force: continuing with the new values of {'; '.join(diffs)}.")
    return True


def check_checkpoint(cfg: RunConfig, run_dir: Path) -> None:
    """Refuse to resume from a checkpoint that the run could not continue: of another
    trainer, beyond `[train] steps`, damaged, or of other shapes or dtypes. Reads only."""
    from ..train import load_checkpoint, read_checkpoint_header
    from . import build

    history = run_dir / HISTORY
    if history.exists():
        try:
            with np.load(history) as arrays:
                arrays["step"]
        except Exception as err:  # numpy raises several types on a damaged file
            raise ConfigError(
                f"`--resume`: {str(history)!r} cannot be read ({type(err).__name__}); delete "
                f"it (the history of the steps so far is then lost) or restore a copy."
            ) from None
    path = run_dir / CHECKPOINT
    if not path.exists():
        return
    trainer = TRAINERS[cfg.family]
    header = read_checkpoint_header(path)
    if header["trainer"] != trainer:
        raise ConfigError(
            f"`--resume`: {str(path)!r} was written by `{header['trainer']}`, not by "
            f"`{trainer}` (family {cfg.family!r}); pass `--overwrite` to start afresh."
        )
    steps = cfg["train"]["steps"]
    if header["step"] > steps:
        raise ConfigError(
            f"`--resume`: `[train] steps` (`--steps`) is {steps} but {str(path)!r} is already at "
            f"step {header['step']}; pass `--steps` >= {header['step']} to train further."
        )
    d = build.load_data(cfg)
    load_checkpoint(path, build.training_state_like(cfg, d), trainer=trainer)


class RunLock:
    """An exclusive lock on a run directory: the file `.lock`, created with `O_EXCL` and
    holding the pid, removed on exit. A lock whose process is dead is stale and taken over."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.path = run_dir / LOCK
        self.held = False

    def owner(self) -> int | None:
        """The pid of the live process holding the lock, or `None`."""
        try:
            text = self.path.read_text(encoding="ascii", errors="replace").strip()
            age = time.time() - self.path.stat().st_mtime
        except OSError:
            return None
        if not text.isdigit():  # being written right now, or garbage
            return -1 if age < 10.0 else None
        pid = int(text)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except (PermissionError, OverflowError, ValueError):
            return pid if isinstance(pid, int) and pid > 0 else None
        return pid

    def check(self) -> None:
        pid = self.owner()
        if pid is not None:
            who = f"process {pid}" if pid > 0 else "another process"
            raise ConfigError(
                f"the run directory {str(self.run_dir)!r} is locked by {who} (`gpm-sde "
                f"train` is writing to it; its lock file is {str(self.path)!r}); wait for it, "
                f"or pass another `--out`."
            )

    def __enter__(self) -> RunLock:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                f"the run directory {str(self.run_dir)!r} (`--out`) cannot be created: "
                f"{err.strerror}; pass another `--out`."
            ) from None
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self.check()
                self.path.unlink(missing_ok=True)  # stale: its process is dead
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return self
        self.check()
        raise ConfigError(f"cannot lock the run directory {str(self.run_dir)!r}.")

    def __exit__(self, *exc: Any) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _clear(run_dir: Path) -> None:
    """Delete the files of the run in `run_dir` (`--overwrite`), keeping the lock."""
    for name in _entries(run_dir):
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def versions() -> dict[str, str]:
    """The versions of Python and of the packages a run depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("gpm_sde", "jax", "jaxlib", "equinox", "optax", "diffrax", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


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
    d = build.load_data(cfg)
    models = build.build_models(cfg, d)
    t = cfg["train"]
    key = jr.key(t["seed"])
    trainer = getattr(trainers, TRAINERS[family])
    opts: dict[str, Any] = {
        **trainer_options(cfg, trainer),
        "steps": t["steps"],
        "checkpoint": run_dir / CHECKPOINT,
        "history": run_dir / HISTORY,
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
    _summary(cfg, run_dir, history, elapsed)
    return 0


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
