"""``aptools check``: build a provider as ``serve`` would and report on it."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import TYPE_CHECKING, Any

from aptools.cli.common import (
    STORE_ERRORS,
    compiled_provider,
    store_failure,
    store_url,
    verify_client,
)
from aptools.provider import Provider, ProviderConfigError
from aptools.store import DEFAULT_URL, redact
from aptools.store.registry import sqlite_path

if TYPE_CHECKING:
    from aptools.jobs.engine import JobEngine

UNSET = "unset"
#: A placeholder left in a scope copied from the docs, such as ``<client-id>``.
PLACEHOLDER = re.compile(r"<[^<>/]*>")

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
    configured = os.environ.get("APTOOLS_STORE") or DEFAULT_URL
    try:
        unmade = _unmade(configured)
    except STORE_ERRORS as exc:
        raise store_failure(None, exc) from None
    if unmade:
        # Checking makes no store and migrates none: a module builds its apps
        # when imported, so it is loaded on one in memory instead.
        os.environ["APTOOLS_STORE"] = "memory:"
    where = ""

    def prepare(provider: Provider) -> None:
        nonlocal where
        where = store_url(provider)
        if isinstance(provider._store, str) and provider._store:
            given = _unmade(provider._store)  # given in code
            if given:
                where += given
                provider._store = "memory:"
        elif unmade:
            where = redact(configured) + unmade

    provider, _ = compiled_provider(args.target, prepare=prepare)
    for placeholder in PLACEHOLDER.findall(provider.scope):
        print(
            f"aptools check: warning: the scope {provider.scope} still holds the "
            f"placeholder {placeholder}: replace it with your client's id",
            file=sys.stderr,
        )
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
    print("\nroutes (each GET also answers HEAD; every path answers OPTIONS):")
    methods: dict[str, list[str]] = {}
    for route in route_table(provider.handlers):
        if route.method in ("HEAD", "OPTIONS"):
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


def _unmade(url: str) -> str | None:
    """What serving would first create or migrate in the store at ``url``,
    as a note for the report, or None when it is there, current (or not a
    SQLite or PostgreSQL store). Creates nothing."""
    if _sqlite_file_missing(url):
        return " (store does not exist yet; it will be created at first serve)"
    if not url.lower().startswith(("postgresql:", "postgres:")):
        return None
    try:
        from aptools.store.postgresql import VERSION, PostgreSQLStore
    except ImportError:
        return None  # opening it says what to install
    found = PostgreSQLStore.survey(url)
    if found == 0:
        return " (no aptools tables in its schema yet; the first serve creates them)"
    if found < VERSION:
        return (
            f" (tables at version {found}; the first serve migrates them to "
            f"version {VERSION})"
        )
    return None


def _sqlite_file_missing(url: str) -> bool:
    """Whether ``url`` is a SQLite store whose file does not exist yet, in a
    directory that does (a missing directory is an error the store reports)."""
    path = sqlite_path(url)
    if path is None or os.path.exists(path):
        return False
    return os.path.isdir(os.path.dirname(path) or ".")
