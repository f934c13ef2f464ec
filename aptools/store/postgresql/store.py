"""The PostgreSQL store: one database shared by any number of hosts.

Every call is one statement in autocommit mode, sent on a connection of a
per-process pool (psycopg 3, psycopg_pool; see
:mod:`aptools.store.postgresql.database`), so each is atomic across hosts
and costs one round trip. Rows carry the provider's namespace, so views of
one store made by :meth:`PostgreSQLStore.for_provider` never see each
other's actions, request keys or introspections.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

import psycopg
import psycopg.errors

from aptools.errors import StoreUnavailable
from aptools.models import Action
from aptools.store.base import (
    CONFLICT,
    NEW,
    PENDING,
    RequestKey,
    Reservation,
    Store,
    Stored,
)
from aptools.store.postgresql.database import Conn, Database
from aptools.store.postgresql.introspections import Introspections
from aptools.store.postgresql.schema import (
    VERSION,
    SchemaTooNew,
    found_version,
    migrate,
)
from aptools.store.postgresql.settings import Settings
from aptools.store.registry import redact
from aptools.vocabulary import TERMINAL

if TYPE_CHECKING:
    from aptools.store.postgresql.jobs import PostgresJobQueue

__all__ = ["PostgreSQLStore"]

_TERMINAL: Final = sorted(TERMINAL)
# Expired actions deleted per statement by purge.
PURGE_BATCH: Final = 1000
# A request key still held this long (seconds) belongs to a run whose host
# died and that no retry took over (any lease is far shorter): purged.
ABANDONED_AFTER: Final = 86_400.0


# PostgreSQL text cannot hold U+0000, so no stored action id has it: an id
# with one (say, from a request path) names no action.
_NUL: Final = "\x00"


class PostgreSQLStore(Store):
    """Actions in a PostgreSQL database, shared by any number of hosts.

    >>> store = PostgreSQLStore("postgresql://aptools:secret@db:5432/aptools")
    >>> provider = Provider(..., store=store)

    ``url`` is described in :mod:`aptools.store.postgresql.settings`
    (schema, pool size, timeouts). Tables are created or migrated here, at
    start-up (see :mod:`aptools.store.postgresql.schema`). Raises
    :class:`ValueError` for a bad URL (its password never shown),
    :class:`~aptools.store.postgresql.schema.SchemaTooNew` for a database of
    a newer aptools, and :class:`ConnectionError` when the database cannot be
    reached at start-up. Once running, a call that cannot reach the
    database in time raises :class:`aptools.StoreUnavailable` (503).
    """

    # Every call waits on the network: the ASGI face runs it in a thread.
    # PERF: threads rather than psycopg's async API (which would also need
    # every call written twice): status reads by 16 tasks on one event loop
    # took 235 µs wall and 150 µs CPU each through threads, 1197 and 333
    # through an AsyncConnectionPool of the same size (benchmarks/postgresql.py,
    # 2026-12-07).
    io_bound = True

    def __init__(self, url: str, *, namespace: str = "") -> None:
        settings = Settings.parse(url)
        self.url = redact(url)
        self.namespace = namespace
        self._closed = False
        self._db = Database(settings)
        try:
            with self._db.connect() as conn:
                migrate(conn, settings.schema)
        except psycopg.OperationalError as exc:
            raise ConnectionError(
                f"PostgreSQL store {self.url}: cannot connect: {settings.scrub(exc)}"
            ) from None
        except SchemaTooNew as exc:
            raise SchemaTooNew(f"PostgreSQL store {self.url}: {exc}") from None
        self._sql = self._db.statements

    @staticmethod
    def survey(url: str) -> int:
        """The version of the tables at ``url`` (0: none yet), read without
        creating or migrating anything (``aptools check``). Raises as the
        constructor does."""
        settings = Settings.parse(url)
        shown = redact(url)
        try:
            with Database(settings).connect() as conn:
                return found_version(conn, settings.schema)
        except psycopg.OperationalError as exc:
            raise ConnectionError(
                f"PostgreSQL store {shown}: cannot connect: {settings.scrub(exc)}"
            ) from None
        except SchemaTooNew as exc:
            raise SchemaTooNew(f"PostgreSQL store {shown}: {exc}") from None

    def __repr__(self) -> str:
        return f"PostgreSQLStore({self.url!r}, namespace={self.namespace!r})"

    def for_provider(self, namespace: str) -> PostgreSQLStore:
        """A view of this store for one provider: same pool, own namespace."""
        view = object.__new__(PostgreSQLStore)
        view.url = self.url
        view.namespace = namespace
        view._closed = False
        view._db = self._db
        view._sql = self._sql
        with self._db._mutex:
            self._db.users += 1
        return view

    def reserve(
        self, key: RequestKey, action_id: str, now: float, lease: float
    ) -> Reservation:
        params = {
            "namespace": self.namespace,
            "action_id": action_id,
            "creator_id": key.creator_id,
            "request_id": key.request_id,
            "fingerprint": key.fingerprint,
            "now": now,
            "lease": lease,
        }
        row = self._one(self._sql.reserve, params)
        assert row is not None  # an upsert always returns its row
        outcome = row[0]
        if outcome == "new":
            return NEW
        if outcome == "pending":
            return PENDING
        if outcome == "conflict":
            return CONFLICT
        return Reservation("existing", Stored(*row[1:]))

    def create(self, stored: Stored, action: Action, expires_at: float | None) -> None:
        shared = [f"monitor_by {p}" for p in action.monitor_by]
        shared += [f"manage_by {p}" for p in action.manage_by]
        self._execute(
            self._sql.create,
            {
                "namespace": self.namespace,
                "action_id": action.action_id,
                "status": stored.status,
                "expires_at": expires_at,
                "public": stored.public,
                "doc": stored.doc,
                "shared": shared,
            },
        )

    def renew(self, action_ids: Collection[str], now: float) -> None:
        ids = [a for a in action_ids if _NUL not in a]
        if ids:
            self._execute(
                self._sql.renew,
                {"namespace": self.namespace, "action_ids": ids, "now": now},
            )

    def abandon(self, action_id: str) -> None:
        if _NUL in action_id:
            return
        self._execute(
            self._sql.abandon, {"namespace": self.namespace, "action_id": action_id}
        )

    def get(self, action_id: str, now: float) -> Stored | None:
        if _NUL in action_id:
            return None
        row = self._one(
            self._sql.get,
            {"namespace": self.namespace, "action_id": action_id, "now": now},
        )
        return None if row is None else Stored(*row)

    def update(
        self, action_id: str, stored: Stored, expires_at: float | None, now: float
    ) -> Stored | None:
        if _NUL in action_id:
            return None
        row = self._one(
            self._sql.update,
            {
                "namespace": self.namespace,
                "action_id": action_id,
                "status": stored.status,
                "expires_at": expires_at,
                "public": stored.public,
                "doc": stored.doc,
                "terminal": _TERMINAL,
                "now": now,
            },
        )
        if row is None:
            return None
        public = stored.public if row[3] is None else row[3]
        doc = stored.doc if row[4] is None else row[4]
        return Stored(row[0], row[1], row[2], public, doc)

    def delete(self, action_id: str) -> None:
        if _NUL in action_id:
            return
        self._execute(
            self._sql.delete, {"namespace": self.namespace, "action_id": action_id}
        )

    def list(
        self,
        principals: Mapping[str, Collection[str]],
        statuses: Collection[str],
        now: float,
    ) -> list[Action]:
        creators = list(principals.get("creator_id", ()))
        shared = [
            f"{role} {p}"
            for role in ("monitor_by", "manage_by")
            for p in principals.get(role, ())
        ]
        if not statuses or not (creators or shared):
            return []
        if creators and shared:
            query = self._sql.list_by_both
        else:
            query = self._sql.list_by_creator if creators else self._sql.list_by_shared
        params = {
            "namespace": self.namespace,
            "now": now,
            "statuses": list(statuses),
            "creators": creators,
            "shared": shared,
        }

        def fetch(conn: Conn) -> list[tuple[Any, ...]]:
            return conn.execute(query, params, binary=True).fetchall()

        return [Stored(*row).action() for row in self._db.run(fetch)]

    def purge(self, now: float) -> int:
        """Delete expired actions, and request keys held for more than
        :data:`ABANDONED_AFTER` seconds, at most :data:`PURGE_BATCH` rows per
        statement (so no lock is held for long); return how many actions
        went."""
        params = {
            "namespace": self.namespace,
            "now": now,
            "abandoned": now - ABANDONED_AFTER,
            "batch": PURGE_BATCH,
        }
        gone = 0
        while True:
            row = self._one(self._sql.purge, params)
            count = 0 if row is None else int(row[0])
            gone += count
            if count < PURGE_BATCH:
                break
        while self._execute(self._sql.purge_abandoned, params) == PURGE_BATCH:
            pass
        self._db.rates.purge(self.namespace)
        return gone

    def count_run(self, identity_id: str, runs: int, per: float) -> float:
        return self._db.rates.count(self.namespace, identity_id, runs, per)

    def introspections(self) -> Introspections:
        """Token introspections shared by every host, in this namespace."""
        return Introspections(self._db, self.namespace)

    def jobs(self) -> PostgresJobQueue:
        """Background jobs in table ``aptools_jobs`` of this schema, in this
        namespace, shared by every host (see :mod:`aptools.store.postgresql.jobs`)."""
        from aptools.store.postgresql.jobs import PostgresJobQueue

        return PostgresJobQueue(self._db, self.namespace)

    def ready(self) -> None:
        """Ready while the database answers within the pool's and the
        statement's timeouts and its schema is at :data:`VERSION` (one
        statement)."""
        if self.closed:
            raise StoreUnavailable("The action store is closed.")
        # The schema name was checked to be a plain identifier (settings).
        schema = self._db.settings.schema
        query = f'SELECT max(version) FROM "{schema}".aptools_schema'  # noqa: S608

        def version(conn: Conn) -> Any:
            row = conn.execute(query.encode()).fetchone()
            return None if row is None else row[0]

        try:
            found = self._db.run(version)
        except psycopg.errors.UndefinedTable:
            found = None
        if found != VERSION:
            raise StoreUnavailable(
                f"The PostgreSQL schema is at version {found or 0}; this aptools"
                f" expects {VERSION}."
            )

    @property
    def closed(self) -> bool:
        """Whether this view, or every view of the store, was closed."""
        return self._closed or self._db.users <= 0

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()

    # -- one statement, one round trip -----------------------------------------

    def _one(self, query: bytes, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        def fetch(conn: Conn) -> tuple[Any, ...] | None:
            return conn.statement(query, params, binary=True).fetchone()

        return self._db.run(fetch)

    def _execute(self, query: bytes, params: Mapping[str, Any]) -> int:
        def execute(conn: Conn) -> int:
            return conn.statement(query, params).rowcount

        return self._db.run(execute)
