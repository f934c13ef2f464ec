"""Stores by URL scheme: ``open_store(url)`` and where it finds a factory.

A factory is a callable ``factory(url: str) -> Store``. The schemes built in
are below (imported only when used); other packages add theirs through the
entry point group ``aptools.stores``, the entry point's name being the
scheme::

    # pyproject.toml of a package offering redis://
    [project.entry-points."aptools.stores"]
    redis = "aptools_redis:open_redis"

A built-in scheme cannot be taken over by an entry point.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from importlib import metadata
from typing import Final
from urllib.parse import urlsplit

from aptools.store.base import Store

__all__ = ["DEFAULT_URL", "ENTRY_POINT_GROUP", "Factory", "open_store", "redact"]

Factory = Callable[[str], Store]

#: The store of a provider given none: a SQLite file in the working directory.
DEFAULT_URL: Final = "sqlite:///aptools-actions.db"
ENTRY_POINT_GROUP: Final = "aptools.stores"

#: Built-in schemes, as ``"module:attribute"`` of their factory.
BUILT_IN: Final[dict[str, str]] = {
    "memory": "aptools.store.registry:open_memory",
    "sqlite": "aptools.store.registry:open_sqlite",
    "postgresql": "aptools.store.postgresql:open_postgresql",
    "postgres": "aptools.store.postgresql:open_postgresql",
}

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_SQLITE_FORMS = "'sqlite:///relative/file.db' or 'sqlite:////absolute/file.db'"
_FORMS = f"'memory:', {_SQLITE_FORMS}, 'postgresql://user@host/dbname'"


def open_store(url: str | None = None) -> Store:
    """A store from a URL, by its scheme: ``memory:``,
    ``sqlite:///path/to/file.db``, or a scheme another package registers.

    Without a URL, ``APTOOLS_STORE`` is read, and failing that a SQLite file
    ``aptools-actions.db`` in the working directory is used. Raises
    :class:`ValueError` for an unknown scheme or a bad URL; its text never
    holds the URL's password.

    >>> open_store("sqlite:////var/lib/provider/actions.db")
    """
    url = url or os.environ.get("APTOOLS_STORE") or DEFAULT_URL
    found = _SCHEME.match(url)
    if found is None:
        raise ValueError(
            f"unknown store URL {redact(url)!r}: a store URL starts with a scheme;"
            f" use {_FORMS}"
        )
    scheme = found.group(1).lower()
    factory = _factory(scheme)
    if factory is None:
        raise ValueError(
            f"unknown store URL {redact(url)!r}: no store for {scheme + ':'!r}"
            f" (use {_FORMS}, or install a package that offers it through the"
            f" entry point group {ENTRY_POINT_GROUP!r})"
        )
    try:
        return factory(url)
    except ValueError as exc:
        secret = _password(url)
        if secret and secret in str(exc):
            raise ValueError(str(exc).replace(secret, "***")) from None
        raise


def _factory(scheme: str) -> Factory | None:
    target = BUILT_IN.get(scheme)
    if target is not None:
        module, _, name = target.partition(":")
        made: Factory = getattr(importlib.import_module(module), name)
        return made
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        loaded: Factory = entry.load()
        return loaded
    return None


def redact(url: str) -> str:
    """``url`` with its password (in the user information, or a
    ``password=`` query parameter) replaced by ``***``; safe to print.

    >>> redact("postgresql://app:s3cret@db.example.org/actions")
    'postgresql://app:***@db.example.org/actions'
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        end = len(rest)
        for mark in "/?#":
            at = rest.find(mark)
            if at != -1:
                end = min(end, at)
        authority = rest[:end]
        user, at_sign, host = authority.rpartition("@")
        if at_sign and ":" in user:
            name = user.partition(":")[0]
            rest = f"{name}:***@{host}{rest[end:]}"
        url = f"{scheme}{sep}{rest}"
    else:
        # Not a URL of any known form: hide whatever might be credentials.
        head, at_sign, tail = url.rpartition("@")
        if at_sign and ":" in head:
            url = f"{head.partition(':')[0]}:***@{tail}"
    return re.sub(r"(?i)(password=)[^&#;\s]*", r"\1***", url)


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def open_memory(url: str) -> Store:
    """``memory:`` (or ``memory://``): a :class:`~aptools.MemoryStore`."""
    from aptools.store.memory import MemoryStore

    if url.lower() not in ("memory:", "memory://"):
        raise ValueError(f"a memory store URL is 'memory:', not {redact(url)!r}")
    return MemoryStore()


def open_sqlite(url: str) -> Store:
    """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``: a
    :class:`~aptools.SQLiteStore` (the directory must exist)."""
    from aptools.store.sqlite import SQLiteStore

    path = sqlite_path(url)
    if path is None:
        raise ValueError(f"a SQLite store URL is {_SQLITE_FORMS}, not {redact(url)!r}")
    return SQLiteStore(path)


def sqlite_path(url: str) -> str | None:
    """The file path of a ``sqlite:///...`` store URL; ``None`` for any
    other URL."""
    scheme, sep, path = url.partition(":///")
    if not sep or not path or scheme.lower() != "sqlite":
        return None
    return path
