"""``aptools rekey``: re-seal every kept token with the newest key.

After the newest key was put first in ``APTOOLS_ENCRYPTION_KEY`` (``NEW,OLD``)
on every host, this re-encrypts the tokens jobs keep for their callers with
it, so that the old key can go::

    APTOOLS_ENCRYPTION_KEY=NEW,OLD aptools rekey mypackage.app

Rows no key opens are named (by action id) and left as they are; the
command then exits 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aptools.cli.common import CommandError, compiled_provider

__all__ = ["add_parser", "rekey"]

HELP = "re-encrypt the tokens jobs keep with the newest encryption key"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "rekey",
        help=HELP,
        description=(
            "Re-encrypt every token the provider's jobs keep for their callers "
            "with the first key of APTOOLS_ENCRYPTION_KEY (keys separated by "
            "commas, newest first). Exits 1 if some tokens no key opens."
        ),
    )
    parser.add_argument("target", help="MODULE or MODULE:ATTR naming the Provider")
    parser.set_defaults(func=rekey)


def rekey(args: argparse.Namespace) -> int:
    """Re-seal the kept tokens of ``args.target``'s jobs; 0, or 1 when some
    could not be opened. Raises :class:`CommandError` for a provider whose
    job keeps no tokens, or a store that is private to this process."""
    from aptools.jobs.keys import rekey as reseal_all
    from aptools.store import MemoryStore

    _, spec = compiled_provider(args.target)
    engine = spec.jobs
    keys = None if engine is None else engine.keys
    if engine is None or keys is None:
        raise CommandError(f"{args.target} has no job that keeps tokens")
    if isinstance(spec.store, MemoryStore):
        raise CommandError(
            "the memory: store keeps its tokens in the memory of the process "
            "serving it: there is nothing to re-encrypt here"
        )
    done, unreadable = reseal_all(engine.queue, keys)
    print(f"re-encrypted the kept tokens of {done} job(s) with the newest key")
    for action_id in unreadable:
        print(
            f"aptools rekey: no key opens the tokens kept for action {action_id}",
            file=sys.stderr,
        )
    return 1 if unreadable else 0
