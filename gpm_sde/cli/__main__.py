"""`python -m gpm_sde.cli`: the `gpm-sde` command line."""

from . import main

if __name__ == "__main__":
    raise SystemExit(main())
