"""``python -m aptools.cli``: the ``aptools`` command."""

from aptools.cli import main

raise SystemExit(main())
