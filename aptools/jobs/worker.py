"""``python -m aptools.jobs.worker MODULE[:ATTR]``: ``aptools worker`` by
another name (see :mod:`aptools.cli.worker`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``aptools worker`` with ``argv`` (default: this process's arguments)."""
    from aptools.cli import main as aptools

    return aptools(["worker", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
