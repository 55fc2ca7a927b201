r"""The `gpm-sde` command line: `demo`, `train`, `sample` and `verify`.

```
gpm-sde demo [--out DIR] [--fast]          # DiffFlow across g and the reverse λ-family
gpm-sde train CONFIG.toml [--out DIR]      # a training loop of gpm_sde.train from TOML
gpm-sde sample RUN_DIR [--n N] [--out F]   # samples of a trained run, .npy and .png
gpm-sde verify [CLAIM ...] [--fast]        # the theory report (python -m theory)
```

`main(argv)` runs it in-process and returns the exit code: 0 on success, 2 on a usage or
configuration error (the message names the key or the file), otherwise the command's own
code (`verify` returns 1 when a claim fails). Heavy imports (JAX) happen inside the commands,
so `--help` is quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import demo, sample_cmd, train_cmd, verify
from .config import ConfigError


def parser() -> argparse.ArgumentParser:
    """The argument parser of `gpm-sde` and its subcommands."""
    from .. import __version__

    root = argparse.ArgumentParser(
        prog="gpm-sde",
        description=(
            "GANs and score-based diffusion as one object: particle clouds moved by SDEs. "
            "Run `gpm-sde COMMAND --help` for the options of a command."
        ),
    )
    root.add_argument("--version", action="version", version=f"gpm_sde {__version__}")
    commands = root.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help="the command to run"
    )
    demo.add_parser(commands)
    train_cmd.add_parser(commands)
    sample_cmd.add_parser(commands)
    verify.add_parser(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run `gpm-sde` with the arguments `argv` (default: `sys.argv[1:]`); return the exit
    code."""
    from ..train import CheckpointError

    argv = list(sys.argv[1:] if argv is None else argv)
    root = parser()
    try:
        args, extra = root.parse_known_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error
        return int(exit_.code or 0)
    if extra:
        if args.command != "verify":
            root.print_usage(sys.stderr)
            print(f"gpm-sde: error: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
            return 2
        args.extra = extra  # passed on to `python -m theory`
    try:
        return int(args.run(args))
    except (ConfigError, CheckpointError) as err:
        print(f"gpm-sde {args.command}: error: {err}", file=sys.stderr)
        return 2
