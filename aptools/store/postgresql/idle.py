"""Connections of a pool kept idle by this process for its next store calls.

:class:`Idle` stands in front of a :class:`psycopg_pool.ConnectionPool`: a
store call takes a connection kept idle here if there is one, else one from
the pool, and gives it back here, unless

- it is not idle in a clean state (a transaction open or failed, or the
  connection lost): the pool resets or replaces it;
- a call of this process is waiting for a connection from the pool (the
  pool could not serve it): the pool hands it on at once;
- a second (:data:`HAND_BACK_EVERY`) has passed since the kept connections
  last went back: then they all go back to the pool, which replaces those
  past their lifetime or drained, and keeps its statistics.

So the pool still bounds the connections (``pool_max``), opens, checks and
replaces them; only the checkout of a healthy connection between two calls
skips its bookkeeping. Every user of the store's pool takes its connections
here (:meth:`Idle.take` or :meth:`Idle.connection`), so that none waits on
the pool while a connection is kept idle here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import psycopg
from psycopg.pq import TransactionStatus

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

#: The pool's connection class.
Conn = TypeVar("Conn", bound=psycopg.Connection[Any])

__all__ = ["HAND_BACK_EVERY", "Idle"]

# Seconds between two returns of every kept connection to the pool.
HAND_BACK_EVERY: Final = 1.0

_IDLE: Final = TransactionStatus.IDLE


# PERF: our own few lines in front of psycopg_pool: a checkout from the pool
# and the return to it (ConnectionPool.getconn/putconn) cost 29.6k
# instructions, about a third of a one-row SELECT by the store; taken from and
# given back here, about 6k (PostgreSQLStore.get: 114.8k instructions through
# the pool, 91.0k through Idle; callgrind, 300 calls, psycopg_pool 3.3).
class Idle(Generic[Conn]):
    """Connections of ``pool`` kept idle between store calls (thread-safe)."""

    def __init__(self, pool: ConnectionPool[Conn]) -> None:
        self.pool = pool
        self._kept: list[Conn] = []
        self._lock = threading.Lock()
        self._waiting = 0
        self._closing = False
        self._hand_back_at = monotonic() + HAND_BACK_EVERY

    def take(self, timeout: float | None = None) -> Conn:
        """A connection kept here, else one from the pool within ``timeout``
        seconds (the pool's own by default; raises
        :class:`psycopg_pool.PoolTimeout` as the pool does)."""
        try:
            return self._kept.pop()  # atomic: no lock needed to take one
        except IndexError:
            pass
        with self._lock:
            if self._kept:
                return self._kept.pop()
            # Counted before asking the pool, under the lock that keeping a
            # connection takes: one given back from now on goes to the pool,
            # which serves this call.
            self._waiting += 1
        try:
            return self.pool.getconn(timeout)
        finally:
            with self._lock:
                self._waiting -= 1

    def give(self, conn: Conn) -> None:
        """Keep ``conn`` for the next call, or return it to the pool."""
        back: list[Conn] = []
        # (A call that ends after the last hand-back, when the pool closes,
        # returns its connection to the closed pool, which closes it.)
        if conn.pgconn.transaction_status == _IDLE:
            now = monotonic()
            with self._lock:
                if not (self._waiting or self._closing) and now < self._hand_back_at:
                    self._kept.append(conn)
                    return
                if now >= self._hand_back_at:
                    self._hand_back_at = now + HAND_BACK_EVERY
                    back = self._take_all()
        for kept in back:
            self.pool.putconn(kept)
        self.pool.putconn(conn)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Conn]:
        """A connection for the block: :meth:`take`, then :meth:`give`."""
        conn = self.take(timeout)
        try:
            yield conn
        finally:
            self.give(conn)

    def hand_back(self) -> None:
        """Return every kept connection to the pool, and keep none from now
        on (the pool is about to close)."""
        with self._lock:
            self._closing = True
        for kept in self._take_all():
            self.pool.putconn(kept)

    def _take_all(self) -> list[Conn]:
        # Popped one by one from the list that take() pops from without the
        # lock: each connection is taken by exactly one thread.
        taken = []
        while True:
            try:
                taken.append(self._kept.pop())
            except IndexError:
                return taken
