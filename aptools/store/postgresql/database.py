"""One PostgreSQL database as the processes of a host reach it: settings,
prepared statements, and a connection pool per process.

A pool made before a fork is never used by the child (its sockets are the
parent's): the child makes its own on first use. Every call runs on a pool
connection in autocommit mode, kept idle between calls in front of the pool
(:mod:`aptools.store.postgresql.idle`), and sends the store's statements on
the connection's kept cursor (:meth:`Conn.statement`); an unreachable or slow
database is :class:`aptools.StoreUnavailable` (503). The store's views
(:class:`~aptools.store.postgresql.PostgreSQLStore`), its shared
introspections and its job queue all run their statements here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from aptools.errors import StoreUnavailable
from aptools.forks import generation
from aptools.store.postgresql.idle import Idle
from aptools.store.postgresql.rates import RunRates
from aptools.store.postgresql.settings import Settings
from aptools.store.postgresql.statements import Statements

__all__ = ["RECONNECT_TIMEOUT", "Conn", "Database"]

log = logging.getLogger("aptools.store")


T = TypeVar("T")


class Conn(psycopg.Connection[tuple[Any, ...]]):
    """A connection of the store's: psycopg's, keeping one cursor for the
    statements the store sends through :meth:`statement`."""

    _kept: psycopg.Cursor[tuple[Any, ...]] | None = None

    def statement(
        self, query: bytes, params: Mapping[str, Any], *, binary: bool = False
    ) -> psycopg.Cursor[tuple[Any, ...]]:
        """Send ``query`` with ``params`` on this connection's kept cursor
        (its rows in binary format if ``binary``); the cursor, to read them.

        Raises what :meth:`psycopg.Cursor.execute` raises.
        """
        # PERF: one cursor per connection, made once: Connection.execute makes
        # a cursor per call, 34k of the 100k instructions of a one-row SELECT
        # (callgrind, 1000 statements, psycopg 3.3).
        cursor = self._kept
        if cursor is None:
            cursor = self._kept = self.cursor()
        return cursor.execute(query, params, binary=binary)


# Seconds a pool keeps trying to replace a lost connection in the background.
RECONNECT_TIMEOUT: Final = 5.0

# Pools, and connections kept idle, inherited from a parent process: never
# used nor closed (closing would end the parent's sessions on the shared
# sockets), only kept from the garbage collector.
_inherited: list[ConnectionPool[Conn] | Idle[Conn]] = []


class Database:
    """What the views of one store share: settings, statements, the pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.statements = Statements.of(settings.schema)
        #: The callers' run buckets (max_runs_per_caller).
        self.rates = RunRates(settings.schema, self.run)
        self.users = 1
        self._pool: ConnectionPool[Conn] | None = None
        self._idle: Idle[Conn] | None = None
        self._forks = generation()
        self._mutex = threading.Lock()
        self._options: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, round(settings.connect_timeout)),
            "options": (
                f"-c statement_timeout={int(settings.statement_timeout * 1000)}"
            ),
            # PERF: every statement is prepared on its first use on a
            # connection, then sent as Bind/Execute only.
            "prepare_threshold": 0,
        }

        if "application_name" not in settings.conninfo:
            self._options["application_name"] = "aptools"

    def connect(self) -> Conn:
        """A connection of its own (for start-up work), not from the pool."""
        return Conn.connect(self.settings.conninfo, **self._options)

    def pool(self) -> ConnectionPool[Conn]:
        """This process's pool (made on first use)."""
        return self.idle().pool

    def idle(self) -> Idle[Conn]:
        """This process's pool, with the connections kept idle in front of it
        (made on first use)."""
        idle = self._idle
        if idle is not None and self._forks == generation():
            return idle
        with self._mutex:
            if self._pool is not None and self._forks != generation():
                _inherited.append(self._pool)
                if self._idle is not None:
                    _inherited.append(self._idle)
                self._pool = self._idle = None
            if self._pool is None:
                self._forks = generation()
                self._pool = ConnectionPool(
                    self.settings.conninfo,
                    connection_class=Conn,
                    kwargs=self._options,
                    min_size=self.settings.pool_min,
                    max_size=self.settings.pool_max,
                    timeout=self.settings.pool_timeout,
                    name="aptools",
                    # Give up a lost connection's reconnection (backing off
                    # from 1 s) soon: a call finding the pool empty starts a
                    # fresh attempt at once, so the pool is whole again
                    # within seconds of the database's return.
                    reconnect_timeout=RECONNECT_TIMEOUT,
                    open=True,
                )
                self._idle = Idle(self._pool)
            assert self._idle is not None
            return self._idle

    def run(self, call: Callable[[Conn], T]) -> T:
        """``call(connection)``, mapping an unreachable or slow database to
        :class:`StoreUnavailable`.

        A connection that broke while idle in the pool (the server restarted,
        or ended it) is dropped and the call made again on another one: every
        store call may be repeated safely, since each is one statement whose
        second run finds the work of the first done.
        """
        attempts = self.settings.pool_max + 1
        while True:
            attempts -= 1
            idle = self.idle()
            try:
                # PERF: no pool.connection(), whose exit also runs a (local)
                # commit; the connection kept idle (see Idle) if any.
                conn = idle.take()
            except PoolTimeout:
                log.warning(
                    "PostgreSQL store: no connection within %ss",
                    self.settings.pool_timeout,
                )
                raise StoreUnavailable() from None
            try:
                return call(conn)
            except psycopg.errors.QueryCanceled:
                log.warning(
                    "PostgreSQL store: a statement exceeded %ss",
                    self.settings.statement_timeout,
                )
                raise StoreUnavailable() from None
            except psycopg.OperationalError as exc:
                if conn.broken and attempts > 0:
                    continue
                log.warning("PostgreSQL store unreachable: %s", type(exc).__name__)
                raise StoreUnavailable() from None
            finally:
                idle.give(conn)

    def close(self) -> None:
        with self._mutex:
            self.users -= 1
            if self.users <= 0 and self._pool is not None:
                if self._forks == generation():
                    if self._idle is not None:
                        self._idle.hand_back()
                    self._pool.close()
                self._pool = self._idle = None
