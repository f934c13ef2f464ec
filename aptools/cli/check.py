"""``aptools check``: build a provider as ``serve`` would and report on it."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from typing import TYPE_CHECKING, Any

from aptools.cli.common import (
    load_provider,
    store_failure,
    store_url,
    verify_client,
)
from aptools.provider import Provider, ProviderConfigError

if TYPE_CHECKING:
    from aptools.jobs.engine import JobEngine

UNSET = "unset"

__all__ = ["add_parser", "check"]

HELP = "build a provider; check its store and client; print routes"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "check",
        help=HELP,
        description=(
            "Build the provider as `aptools serve` would: open its store, ask "
            "Globus Auth whether its client id and secret work (when they are "
            "set), then print its description, store, routes and input schema. "
            "A configuration error is one line and exit status 1."
        ),
    )
    parser.add_argument("target", help="MODULE or MODULE:ATTR naming the Provider")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="do not ask Globus Auth about the client id and secret",
    )
    parser.set_defaults(func=check)


def check(args: argparse.Namespace) -> int:
    """Build a provider and print its description, store, routes and schema."""
    from aptools.protocol.routes import full_path, route_table

    names = ("APTOOLS_CLIENT_ID", "APTOOLS_CLIENT_SECRET")
    from_env = any(os.environ.get(name) for name in names)
    if not from_env:
        # Neither half of the client is set: the description and routes need
        # none, so report that rather than fail (half of it is an error).
        os.environ.update(dict.fromkeys(names, UNSET))
    provider: Provider | None = None
    try:
        provider = load_provider(args.target)
        provider.compile()
    except ProviderConfigError:
        raise
    except (ValueError, OSError, sqlite3.Error) as exc:
        raise store_failure(provider, exc) from None
    where = store_url(provider)
    given = ("_client_id", "_client_secret")
    credentials = from_env or any(getattr(provider, n, None) for n in given)
    if not credentials:
        client = "not set: `aptools serve` needs APTOOLS_CLIENT_ID and _SECRET"
    elif args.offline:
        client = "not checked (--offline)"
    else:
        verify_client(provider)
        client = "Globus Auth accepts the client id and secret"
    about = provider.description
    schema = about.pop("input_schema")
    print(json.dumps(about, indent=2))
    print(f"\nstore: {where}")
    print(f"client: {client}")
    print(f"dependent scopes: {' '.join(provider.dependent_scopes) or 'none declared'}")
    jobs = provider.compile().jobs
    if jobs is not None and jobs.settings.keep_tokens:
        print(f"encryption key: {_key_state(jobs)}")
    print("\nroutes (each GET also answers HEAD):")
    methods: dict[str, list[str]] = {}
    for route in route_table(provider.handlers):
        if route.method == "HEAD":
            continue
        methods.setdefault(full_path(provider.prefix, route.path), []).append(
            route.method
        )
    for path, verbs in methods.items():
        print(f"  {' '.join(sorted(verbs)):<14} {path}")
    print("\ninput schema:")
    print(json.dumps(schema, indent=2))
    return 0


def _key_state(jobs: JobEngine) -> str:
    """Whether the key ring that seals kept tokens is usable (never its text)."""
    try:
        jobs.keys  # noqa: B018 - read to check it
    except ProviderConfigError as exc:
        return f"not usable: {exc} (aptools serve and worker need it)"
    return "set (the first key seals new tokens)"
