"""Entry point of `python -m theory`."""

from .cli import main

raise SystemExit(main())
