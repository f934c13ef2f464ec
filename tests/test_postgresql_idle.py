"""The PostgreSQL store's connections kept idle between calls
(aptools.store.postgresql.idle), against a real server: reused without
asking the pool, handed to a call waiting on the pool, back in the pool every
second and at close, and never kept in a transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    pg_url_fixture,
    schema_fixture,
    with_params,
)

psycopg = pytest.importorskip("psycopg")

from psycopg.pq import TransactionStatus  # noqa: E402

from aptools.store.postgresql import PostgreSQLStore, idle  # noqa: E402
from aptools.store.postgresql.database import Conn  # noqa: E402
from aptools.store.postgresql.idle import HAND_BACK_EVERY  # noqa: E402


@pytest.fixture(name="lone")
def lone_fixture(pg_url: str) -> Iterator[PostgreSQLStore]:
    """A store whose pool has one connection at most."""
    made = PostgreSQLStore(with_params(pg_url, pool_max=1, pool_timeout=3))
    yield made
    made.close()


def _pid(conn: Conn) -> int:
    return conn.info.backend_pid


def test_calls_reuse_the_connection_left_idle(pg_url: str) -> None:
    store = PostgreSQLStore(pg_url)
    try:
        first = store._db.run(_pid)
        asked = store._db.pool().get_stats()["requests_num"]
        pids = {store._db.run(_pid) for _ in range(50)}
        for _ in range(50):
            assert store.get("nothing-here", time.time()) is None
        # The pool is asked again only after a hand-back (once a second).
        assert store._db.pool().get_stats()["requests_num"] - asked <= 2
        assert first in pids
    finally:
        store.close()


def test_a_call_waiting_on_the_pool_gets_the_connection_given_back(
    lone: PostgreSQLStore,
) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold(conn: Conn) -> None:
        holding.set()
        release.wait(10)

    holder = threading.Thread(target=lone._db.run, args=(hold,))
    holder.start()
    assert holding.wait(10)
    took: list[float] = []

    def waiter() -> None:
        started = time.monotonic()
        lone.get("nothing-here", time.time())
        took.append(time.monotonic() - started)

    waiting = threading.Thread(target=waiter)
    waiting.start()
    time.sleep(0.3)  # the waiter is asking the pool by now
    release.set()
    holder.join(10)
    waiting.join(10)
    # Served as soon as the holder was done, not after the 3 s pool timeout
    # (nor failed with StoreUnavailable).
    assert took and took[0] < 2.0


def test_kept_connections_go_back_to_the_pool_every_second(
    lone: PostgreSQLStore,
) -> None:
    pool = lone._db.pool()
    lone.get("nothing-here", time.time())
    assert pool.get_stats()["pool_available"] == 0  # kept, not in the pool
    time.sleep(HAND_BACK_EVERY + 0.2)
    lone.get("nothing-here", time.time())
    assert pool.get_stats()["pool_available"] == 1


def test_a_connection_left_in_a_transaction_is_not_kept(
    lone: PostgreSQLStore,
) -> None:
    def begin(conn: Conn) -> Any:
        conn.execute(b"BEGIN")
        return conn.info.transaction_status

    assert lone._db.run(begin) == TransactionStatus.INTRANS
    # The pool rolled it back: the next call finds it idle.
    assert lone._db.run(lambda c: c.info.transaction_status) == TransactionStatus.IDLE


def test_close_closes_the_kept_connections(pg_url: str) -> None:
    store = PostgreSQLStore(pg_url)
    conns: list[Conn] = []
    store._db.run(conns.append)
    assert not conns[0].closed
    store.close()
    assert conns[0].closed


def test_no_connection_serves_two_calls_at_once(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kept connections handed back to the pool all the time, while 8 threads
    # share 3 connections.
    monkeypatch.setattr(idle, "HAND_BACK_EVERY", 0.002)
    store = PostgreSQLStore(with_params(pg_url, pool_max=3))
    busy: set[int] = set()
    lock = threading.Lock()
    clashes: list[int] = []

    def call(conn: Conn) -> None:
        with lock:
            if id(conn) in busy:
                clashes.append(id(conn))
            busy.add(id(conn))
        conn.execute(b"SELECT pg_sleep(0.001)")
        with lock:
            busy.discard(id(conn))

    try:
        with ThreadPoolExecutor(8) as threads:
            list(threads.map(lambda _: store._db.run(call), range(400)))
    finally:
        store.close()
    assert not clashes


def test_shared_introspections_take_the_connection_kept_idle(
    lone: PostgreSQLStore,
) -> None:
    lone.get("nothing-here", time.time())  # its one connection is kept idle now
    shared = lone.introspections()
    started = time.monotonic()
    with shared.hold(b"token-hash", wait=2.0):
        assert shared._held.conn is not None  # held, not gone on alone
        shared.put(b"token-hash", time.time() + 60, {"active": True})
        got = shared.get(b"token-hash", time.time())
    assert time.monotonic() - started < 1.0
    assert got is not None and got[1] == {"active": True}
