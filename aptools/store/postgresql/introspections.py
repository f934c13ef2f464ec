"""Token introspections shared by every host of a provider, in PostgreSQL.

Records are keyed by the provider's namespace and a hash of the token (never
the token). A process about to introspect a token holds a transaction-level
advisory lock on a hash of (schema, namespace, key): the processes of every
host wanting the same token wait for it, then read its record, so a new
token is introspected once per provider. A failure here never fails a
request: the lock is then not held, ``get`` answers ``None``, ``put`` does
nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, Final

import orjson
import psycopg
from psycopg_pool import PoolTimeout

from aptools.store.postgresql.schema import lock_key

if TYPE_CHECKING:
    from aptools.store.postgresql.database import Conn, Database

__all__ = ["Introspections"]

log = logging.getLogger("aptools.store")

# Expired records deleted per statement, once a minute per process.
_PURGE_BATCH: Final = 1000
_PURGE_EVERY: Final = 60.0

_Failure = (psycopg.Error, PoolTimeout)


class Introspections:
    """:class:`aptools.SharedIntrospections` over one store's pool."""

    def __init__(self, db: Database, namespace: str) -> None:
        self._db = db
        self._namespace = namespace
        self._schema = db.settings.schema
        # The connection holding this thread's lock, reused by get and put.
        self._held = threading.local()
        self._next_purge = 0.0

    @contextmanager
    def hold(self, key: bytes, wait: float) -> Iterator[None]:
        """Hold ``key`` against every process of every host for the block,
        waiting at most ``wait`` seconds for another holder."""
        try:
            cm = self._db.idle().connection(
                timeout=min(wait, self._db.settings.pool_timeout)
            )
            conn = cm.__enter__()
        except _Failure as exc:
            log.warning("shared introspections: no connection (%s)", type(exc).__name__)
            # The database is away: within this hold, read and write nothing
            # (each try would wait for the pool again, out of the request's
            # time for Globus Auth).
            self._held.away = True
            try:
                yield
            finally:
                self._held.away = False
            return
        held = False
        try:
            try:
                conn.execute(b"BEGIN")
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, true),"
                    " pg_advisory_xact_lock(%s)",
                    (
                        f"{max(1, int(wait * 1000))}ms",
                        lock_key("introspection", self._schema, self._namespace, key),
                    ),
                )
                held = True
            except psycopg.Error as exc:
                # Waited long enough (or the database failed): go on alone.
                log.warning("shared introspections: not held (%s)", type(exc).__name__)
                _rollback(conn)
            self._held.conn = conn if held else None
            yield
        finally:
            self._held.conn = None
            if held:
                try:
                    conn.execute(b"COMMIT")
                except psycopg.Error as exc:
                    log.warning("shared introspections: %s", type(exc).__name__)
            cm.__exit__(None, None, None)

    def get(self, key: bytes, now: float) -> tuple[float, dict[str, Any]] | None:
        params = {"namespace": self._namespace, "key": key, "now": now}
        try:
            row = self._call(
                lambda conn: conn.execute(
                    self._db.statements.get_introspection, params, binary=True
                ).fetchone()
            )
        except _Failure as exc:
            log.warning("shared introspections unreadable: %s", type(exc).__name__)
            return None
        if row is None:
            return None
        return float(row[0]), orjson.loads(row[1])

    def put(self, key: bytes, expires_at: float, record: dict[str, Any]) -> None:
        params = {
            "namespace": self._namespace,
            "key": key,
            "expires_at": expires_at,
            "record": orjson.dumps(record),
        }
        now = time.time()
        purge = now >= self._next_purge
        if purge:
            self._next_purge = now + _PURGE_EVERY
        statements = self._db.statements

        def write(conn: Conn) -> None:
            conn.execute(statements.put_introspection, params)
            if purge:
                batch = {"now": now, "batch": _PURGE_BATCH}
                while (
                    conn.execute(statements.purge_introspections, batch).rowcount
                    == _PURGE_BATCH
                ):
                    pass

        try:
            self._call(write)
        except _Failure as exc:
            log.warning("shared introspections not written: %s", type(exc).__name__)

    def _call(self, call: Any) -> Any:
        if getattr(self._held, "away", False):
            raise PoolTimeout("the database was away when the hold began")
        conn: Conn | None = getattr(self._held, "conn", None)
        if conn is not None:
            return call(conn)
        with self._db.idle().connection() as fresh:
            return call(fresh)


def _rollback(conn: Conn) -> None:
    with suppress(psycopg.Error):
        conn.execute(b"ROLLBACK")
