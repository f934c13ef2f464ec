"""Action stores: the interface, an in-memory store and the SQLite default."""

from __future__ import annotations

import os

from aptools.store.base import Reservation, Store, Stored
from aptools.store.memory import MemoryStore
from aptools.store.sqlite import SQLiteStore

__all__ = ["MemoryStore", "Reservation", "SQLiteStore", "Store", "Stored", "open_store"]

DEFAULT_URL = "sqlite:///aptools-actions.db"


def open_store(url: str | None = None) -> Store:
    """A store from a URL: ``memory:``, ``sqlite:///path/to/file.db`` or
    ``postgresql://user:password@host:5432/dbname``.

    Without a URL, ``APTOOLS_STORE`` is read, and failing that a SQLite file
    ``aptools-actions.db`` in the working directory is used.

    >>> open_store("sqlite:////var/lib/provider/actions.db")
    """
    url = url or os.environ.get("APTOOLS_STORE") or DEFAULT_URL
    if url in ("memory:", "memory://"):
        return MemoryStore()
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise ValueError("sqlite store URL needs a path: sqlite:///file.db")
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from aptools.store.postgresql._premerge import open_adapted

        return open_adapted(url)
    raise ValueError(
        "unknown store URL: use 'memory:', 'sqlite:///path/to/file.db' or "
        "'postgresql://user@host/dbname'"
    )
