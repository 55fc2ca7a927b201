"""Entry point of `python -m theory`."""

from .runner import main

raise SystemExit(main())
