r"""The `gpm-sde` command line: `demo`, `train`, `sample` and `verify`.

```
gpm-sde demo [--out DIR] [--fast]          # examples/demo.py: DiffFlow across g, the λ-family
gpm-sde train CONFIG.toml [--out DIR]      # a training loop of gpm_sde.train from TOML
gpm-sde sample RUN_DIR [--n N] [--out F]   # samples of a trained run, .npy and .png
gpm-sde verify [CLAIM ...] [--fast]        # the theory report (python -m theory)
```

`main(argv)` runs it in-process and returns the exit code: 0 on success, 2 on a usage or
configuration error or any other expected failure (a damaged checkpoint, a diverged run, a
file that cannot be written), reported in one line that names the key, argument or file; 130
on Ctrl-C; otherwise the command's own code (`verify` returns 1 when a claim fails). The
arguments are parsed before anything heavy is imported: `gpm-sde --help` loads no command
module and no JAX, and a command imports only its own module. `demo` and `verify` run
scripts of the repository (`examples/demo.py`, the `theory` package), so they need a clone
of it; `train` and `sample` need only the package.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable, Sequence

from .config import ConfigError  # the standard library only

# Each command: the module of `gpm_sde.cli` that defines it (its `add_parser` and `run`), and
# the one-line help that `gpm-sde --help` lists without importing that module.
COMMANDS = {
    "demo": ("demo", "DiffFlow across g and the reverse λ-family on a 2-D mixture"),
    "train": ("train_cmd", "train a model family from a TOML configuration"),
    "sample": ("sample_cmd", "draw samples from a trained run"),
    "verify": ("verify", "run the theory report (python -m theory)"),
}


def parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of `gpm-sde` and its subcommands.

    **Arguments:**

    - `commands`: the commands whose options are loaded (importing their modules); default:
      all of them. The other commands are listed with their one-line help only.
    """
    from .. import __version__

    loaded = set(COMMANDS if commands is None else commands)
    root = argparse.ArgumentParser(
        prog="gpm-sde",
        description=(
            "GANs and score-based diffusion as one object: particle clouds moved by SDEs. "
            "Run `gpm-sde COMMAND --help` for the options of a command."
        ),
    )
    root.add_argument("--version", action="version", version=f"gpm_sde {__version__}")
    subparsers = root.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help="the command to run"
    )
    for name, (module, summary) in COMMANDS.items():
        if name in loaded:
            importlib.import_module(f".{module}", __name__).add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return root


def _command(argv: Sequence[str]) -> str | None:
    """The command named by `argv` (its first positional argument), if it is one."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run `gpm-sde` with the arguments `argv` (default: `sys.argv[1:]`); return the exit
    code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command(argv) or "gpm-sde"
    try:
        return _main(argv)
    except KeyboardInterrupt as err:
        print(f"gpm-sde {command}: {_one_line(err) or 'interrupted'}", file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    command = _command(argv)
    root = parser([] if command is None else [command])
    try:
        args, extra = root.parse_known_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error
        return exit_.code if isinstance(exit_.code, int) else 2
    if extra:
        if args.command != "verify":
            root.print_usage(sys.stderr)
            print(f"gpm-sde: error: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
            return 2
        args.extra = extra  # passed on to `python -m theory`
    try:
        return int(args.run(args))
    except Exception as err:
        if not isinstance(err, _usage_errors()):
            raise
        print(f"gpm-sde {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: BaseException) -> str:
    """The message of `err` on one line; an `OSError` as its reason and file."""
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror + (f": {err.filename!r}" if err.filename else "")
    else:
        text = str(err)
    return " ".join(text.split())


def _usage_errors() -> tuple[type[Exception], ...]:
    """The expected failures, reported in one line with exit code 2: a bad configuration or
    argument, a file that cannot be read or written, and, when the training module was
    loaded (only then can one have been raised), a bad checkpoint or a diverged run."""
    train = sys.modules.get("gpm_sde.train")
    errors: tuple[type[Exception], ...] = (ConfigError, OSError)
    if train is not None:
        errors += (train.CheckpointError, train.TrainingDiverged)
    return errors
