"""``aptools worker MODULE``: a process that only runs a provider's jobs.

Serving processes run jobs too (at most ``max_jobs`` each); worker processes
let the work scale apart from the serving. Any number of them may share the
provider's store (SQLite on one host; a networked store across hosts)::

    aptools worker examples.longjob.app           # the module's one Provider
    aptools worker mypackage.app:provider         # or name it

SIGTERM or SIGINT (Ctrl-C) hands the running jobs back at once and exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from aptools.provider import Provider, ProviderConfigError

__all__ = ["main"]

log = logging.getLogger("aptools.jobs")


def _provider(target: str) -> Provider:
    module_name, _, attr = target.partition(":")
    sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Provider):
            raise SystemExit(f"aptools worker: {target} is not a Provider")
        return found
    found_all = [v for v in vars(module).values() if isinstance(v, Provider)]
    if len(found_all) != 1:
        raise SystemExit(
            f"aptools worker: {module_name} defines {len(found_all)} providers; "
            "name one as MODULE:ATTR"
        )
    return found_all[0]


def parser(into: Any = None) -> argparse.ArgumentParser:
    """The ``worker`` command's arguments (``into``: a subparsers object)."""
    about = "run a provider's background jobs, and serve nothing"
    made: argparse.ArgumentParser = (
        argparse.ArgumentParser(prog="aptools worker", description=about)
        if into is None
        else into.add_parser("worker", help=about, description=about)
    )
    made.add_argument("target", metavar="MODULE[:ATTR]", help="the provider's module")
    return made


def run(args: argparse.Namespace) -> int:
    """Run the jobs of ``args.target`` until SIGTERM or SIGINT; 0 then."""
    provider = _provider(args.target)
    try:
        engine = provider.jobs
    except ProviderConfigError as exc:
        raise SystemExit(f"aptools worker: {exc}") from None
    if engine is None:
        raise SystemExit(
            f"aptools worker: {args.target} has no job (decorate one with "
            "@provider.job)"
        )
    done = threading.Event()

    def finish(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    engine.runner()
    log.info(
        "aptools worker: running the jobs of %r (at most %d at once)",
        provider.title,
        engine.settings.max_jobs,
    )
    while not done.wait(3600):
        pass
    engine.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``aptools worker MODULE[:ATTR]``; the exit status."""
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
