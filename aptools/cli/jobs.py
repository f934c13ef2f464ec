"""``aptools jobs``: the job console of a provider, read from its store.

It opens the provider's store as ``aptools check`` does (any host that can
reach it); it needs neither the client's credentials nor the encryption key
of kept tokens, and it never runs a job.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
from typing import Any

from aptools.cli.common import CommandError, compiled_provider
from aptools.errors import StoreUnavailable
from aptools.jobs import console

__all__ = ["add_parser", "jobs"]

HELP = "list a provider's unfinished jobs; show, cancel, fail or requeue one"
_ACTS = ("show", "cancel", "fail", "requeue")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "jobs",
        help=HELP,
        description=(
            "The provider's unfinished jobs, read from its store: queued, "
            "running, waiting (for consent) and stuck (its action ended but a "
            "process still holds it, or its take-overs are near the limit), "
            "with the caller, the process holding it (host and pid), lease "
            "left, attempts/take-overs, deadline and age. `show ACTION_ID` "
            "shows one in full; `cancel`, `fail --message TEXT` and `requeue` "
            "act on one, each written in the action's log. Needs neither "
            "client credentials nor the encryption key."
        ),
    )
    parser.add_argument("target", help="MODULE or MODULE:ATTR naming the Provider")
    parser.add_argument(
        "act", nargs="?", choices=_ACTS, help="an act on one job (default: list)"
    )
    parser.add_argument("action_id", nargs="?", help="the job's action id")
    parser.add_argument(
        "--state",
        action="append",
        choices=console.STATES,
        help="list only jobs in this state (repeatable)",
    )
    parser.add_argument(
        "--caller", help="list only this identity id's (or username's) jobs"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--message", help="the failure's description (fail)")
    parser.set_defaults(func=jobs)


def operator() -> str:
    """Who acts, as the action's log names them: this user on this host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"operator {user}@{socket.gethostname()} (aptools jobs)"


def _open(target: str) -> tuple[Any, Any, bool]:
    # Building the provider wants client credentials and, for kept tokens, a
    # key; the console uses neither (it reads the store), so stand-ins do.
    from cryptography.fernet import Fernet

    stand_ins = {
        "APTOOLS_CLIENT_ID": "unregistered",
        "APTOOLS_CLIENT_SECRET": "unregistered",
        "APTOOLS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in stand_ins.items() if not os.environ.get(k)})
    try:
        _, spec = compiled_provider(target)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if spec.jobs is None:
        raise CommandError(f"{target} declares no background job")
    from aptools.store.memory import MemoryStore

    if isinstance(spec.store, MemoryStore):
        raise CommandError(
            "the memory: store lives in the serving process only; the console "
            "reads a SQLite or PostgreSQL store"
        )
    return spec.store, spec.jobs.queue, spec.jobs.settings.resumable


def jobs(args: argparse.Namespace) -> int:
    """List, show or act on the provider's jobs; exit 1 on a refused act."""
    store, queue, resumable = _open(args.target)
    try:
        return _act(args, store, queue, resumable)
    except console.ConsoleError as exc:
        raise CommandError(str(exc)) from None
    except StoreUnavailable as exc:
        raise CommandError(f"the store is unavailable: {exc.description}") from None
    finally:
        store.close()


def _act(args: argparse.Namespace, store: Any, queue: Any, resumable: bool) -> int:
    if args.act is None:
        if args.action_id is not None:
            raise CommandError(
                f"unknown act {args.action_id!r}; acts: {', '.join(_ACTS)}"
            )
        views = console.list_jobs(
            store,
            queue,
            states=args.state or (),
            caller=args.caller,
            resumable=resumable,
        )
        if args.json:
            print(json.dumps([v.to_json() for v in views], indent=2))
        else:
            print(console.table(views))
        return 0
    if not args.action_id:
        raise CommandError(f"{args.act} needs an ACTION_ID")
    if args.act == "show":
        print(
            json.dumps(
                console.show_job(store, queue, args.action_id, resumable=resumable),
                indent=2,
            )
        )
        return 0
    who = operator()
    if args.act == "cancel":
        stored = console.cancel_job(store, queue, args.action_id, who)
        said = f"job {args.action_id} canceled: {stored.status}"
    elif args.act == "fail":
        if not args.message:
            raise CommandError("fail needs --message TEXT")
        stored = console.fail_job(store, queue, args.action_id, args.message, who)
        said = f"job {args.action_id} failed: {stored.status}"
    else:
        before = console.requeue_job(
            store, queue, args.action_id, who, resumable=resumable
        )
        said = f"job {args.action_id} ({before}) requeued: claimable at once"
    if args.json:
        print(json.dumps({"action_id": args.action_id, "done": args.act}))
    else:
        print(said)
    return 0
