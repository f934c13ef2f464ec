"""Action stores: the interface, the registry by URL, the memory and SQLite stores."""

from __future__ import annotations

from aptools.store.base import RequestKey, Reservation, Store, Stored
from aptools.store.memory import MemoryStore
from aptools.store.registry import DEFAULT_URL, open_store, redact
from aptools.store.sqlite import SQLiteStore

__all__ = [
    "DEFAULT_URL",
    "MemoryStore",
    "RequestKey",
    "Reservation",
    "SQLiteStore",
    "Store",
    "Stored",
    "open_store",
    "redact",
]
