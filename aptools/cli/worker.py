"""``aptools worker``: a process that only runs a provider's background jobs.

Serving processes run jobs too (at most ``max_jobs`` each); worker processes
let the work scale apart from the serving. Any number of them may share the
provider's store (SQLite on one host, PostgreSQL across hosts)::

    aptools worker examples.longjob.app           # the module's one Provider
    aptools worker mypackage.app:provider         # or name it

SIGTERM or SIGINT (Ctrl-C) hands the running resumable jobs back at once, lets
the others end (at most the job's ``stop_timeout``, then FAILED "Interrupted")
and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from aptools.cli.common import (
    CommandError,
    add_log_format,
    apply_log_format,
    compiled_provider,
    log_requests,
)

__all__ = ["add_parser", "worker"]

HELP = "run a provider's background jobs, and serve nothing"

log = logging.getLogger("aptools.jobs")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "worker",
        help=HELP,
        description=(
            "Run the background jobs (@provider.job) of a provider in this "
            "process, beside or instead of the serving processes, on the "
            "provider's store. SIGTERM or Ctrl-C hands running resumable jobs "
            "back, and lets the others end (at most stop_timeout)."
        ),
    )
    parser.add_argument("target", help="MODULE or MODULE:ATTR naming the Provider")
    add_log_format(parser)
    parser.set_defaults(func=worker)


def worker(args: argparse.Namespace) -> int:
    """Run the jobs of ``args.target`` until SIGTERM or SIGINT; 0 then.

    Raises :class:`CommandError` when the provider has no job, or its store
    cannot open, or is ``memory:`` (private to this process: no job queued by
    a serving process would ever reach it).
    """
    provider, spec = compiled_provider(args.target)
    engine = spec.jobs
    if engine is None:
        raise CommandError(
            f"{args.target} has no background job (decorate one with @provider.job)"
        )
    engine.keys  # noqa: B018 - a job that keeps tokens needs its key to run
    from aptools.store import MemoryStore

    if isinstance(spec.store, MemoryStore):
        raise CommandError(
            "the memory: store keeps its actions and jobs in the memory of the "
            "process serving it, so a worker would never see one: set "
            "APTOOLS_STORE to a store the serving processes share, such as "
            "sqlite:///path/to/actions.db"
        )
    done = threading.Event()

    def finish(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    apply_log_format(args)
    log_requests(logging.INFO)
    spec.execution.start()
    log.info(
        "aptools worker: running the jobs of %r (at most %d at once)",
        provider.title,
        engine.settings.max_jobs,
    )
    while not done.wait(3600):
        pass
    spec.execution.stop()
    return 0
