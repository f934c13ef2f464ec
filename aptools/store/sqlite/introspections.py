"""Token introspections shared by the processes using one SQLite file."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from aptools.store.sqlite.claims import EXTRA_SLOTS, Claims

__all__ = ["SQLiteIntrospections"]

log = logging.getLogger("aptools.store")

#: How often (seconds) a writer deletes expired records.
PURGE_EVERY = 60.0


class SQLiteIntrospections:
    """Token introspections of one provider namespace, kept in the
    ``aptools_introspections`` table of a SQLite file (a
    :class:`~aptools.auth.SharedIntrospections`).

    Records are keyed by a hash of the namespace and the token's hash, so
    providers sharing the file never read each other's records. A process
    about to introspect a token holds the key's byte of the claims file; the
    others wait for it, then read its result. Failures of the database are
    logged and never fail a request: ``get`` answers ``None``, ``put`` does
    nothing.

    ``connection`` gives the calling thread's connection to the file.
    """

    def __init__(
        self,
        connection: Callable[[], sqlite3.Connection],
        claims: Claims,
        namespace: str,
    ) -> None:
        self._connection = connection
        self._claims = claims
        self._prefix = namespace.encode() + b"\0"
        self._next_purge = 0.0

    def _scoped(self, key: bytes) -> bytes:
        return hashlib.sha256(self._prefix + key).digest()

    @contextmanager
    def hold(self, key: bytes, wait: float) -> Iterator[None]:
        scoped = self._scoped(key)
        slot = EXTRA_SLOTS + int.from_bytes(scoped[:4], "big")
        held = self._claims.lock(slot, wait)
        try:
            yield
        finally:
            if held:
                self._claims.unlock(slot)

    def get(self, key: bytes, now: float) -> tuple[float, dict[str, Any]] | None:
        try:
            row = (
                self._connection()
                .execute(
                    "SELECT expires_at, record FROM aptools_introspections"
                    " WHERE key = ? AND expires_at > ?",
                    (self._scoped(key), now),
                )
                .fetchone()
            )
            if row is None:
                return None
            return float(row[0]), orjson.loads(row[1])
        except (sqlite3.Error, orjson.JSONDecodeError) as exc:
            log.warning("shared introspections unreadable: %s", exc)
            return None

    def put(self, key: bytes, expires_at: float, record: dict[str, Any]) -> None:
        now = time.time()
        try:
            db = self._connection()
            db.execute(
                "INSERT OR REPLACE INTO aptools_introspections VALUES (?, ?, ?)",
                (self._scoped(key), expires_at, orjson.dumps(record)),
            )
            if now >= self._next_purge:
                self._next_purge = now + PURGE_EVERY
                db.execute(
                    "DELETE FROM aptools_introspections WHERE expires_at <= ?", (now,)
                )
        except sqlite3.Error as exc:
            log.warning("shared introspections not written: %s", exc)
