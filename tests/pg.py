"""A real PostgreSQL for the tests: a database of their own, a schema per test,
and a TCP relay in front of it that a test can cut, to make it unreachable.

Which server: ``APTOOLS_TEST_POSTGRESQL_URL`` (any database on it the tests
may connect to), else the local server as ``postgres``
(:data:`DEFAULT_SERVER`). The tests never write to that database: they
create one of their own, ``aptools_test_<random>``, the first time a test
needs PostgreSQL, work only in it (:data:`URL`), and drop it when the test
run ends. No server answering: the PostgreSQL tests are skipped, and fail
under ``CI=true``.
"""

from __future__ import annotations

import atexit
import functools
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

T = TypeVar("T")

VARIABLE: Final = "APTOOLS_TEST_POSTGRESQL_URL"
DEFAULT_SERVER: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
#: The server the tests were pointed at (its database is only connected to).
SERVER: Final = os.environ.get(VARIABLE) or DEFAULT_SERVER
#: The tests' own database, made by :func:`unavailable`.
DATABASE: Final = f"aptools_test_{secrets.token_hex(6)}"
#: The URL of the tests' own database on :data:`SERVER`.
URL: Final = urlunsplit(urlsplit(SERVER)._replace(path=f"/{DATABASE}"))


@functools.cache
def unavailable() -> str | None:
    """Why there is no PostgreSQL for the tests, or ``None`` once their own
    database exists (made once per test process, dropped when it exits)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'aptools[postgresql]')"
    try:
        with psycopg.connect(SERVER, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"'.encode())
    except psycopg.Error as exc:
        return f"no PostgreSQL for the tests at {VARIABLE} ({type(exc).__name__})"
    atexit.register(_drop, os.getpid())
    return None


def _drop(made_by: int) -> None:
    """Drop the tests' database, from the process that made it."""
    if os.getpid() != made_by:
        return
    import psycopg

    with (
        suppress(psycopg.Error),
        psycopg.connect(SERVER, autocommit=True, connect_timeout=3) as conn,
    ):
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'.encode())


def require_server() -> None:
    """Skip (fail under CI=true) when there is no PostgreSQL for the tests."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def with_params(url: str, **params: object) -> str:
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{url}{'&' if '?' in url else '?'}{extra}"


def through(relay: Relay, schema: str, **params: object) -> str:
    """The store URL of ``schema``, connecting by way of ``relay``."""
    parts = urlsplit(URL)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{relay.port}" if user else f"127.0.0.1:{relay.port}"
    return with_params(
        urlunsplit(parts._replace(netloc=netloc)), schema=schema, **params
    )


def eventually(attempt: Callable[[], T], done: Callable[[T], bool]) -> T:
    """``attempt()`` until ``done`` says yes, as a client honouring
    ``Retry-After`` would; the last answer after 30 s."""
    give_up = time.monotonic() + 30
    while True:
        got = attempt()
        if done(got) or time.monotonic() > give_up:
            return got
        time.sleep(0.2)


def execute(sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(URL, autocommit=True) as conn:
        cur = conn.execute(sql.encode(), args or None)
        return cur.fetchall() if cur.description else []


@pytest.fixture(name="schema")
def schema_fixture() -> Iterator[str]:
    """A fresh schema name, dropped (with everything in it) afterwards."""
    require_server()
    name = f"aptools_test_{secrets.token_hex(6)}"
    yield name
    execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(name="pg_url")
def pg_url_fixture(schema: str) -> str:
    """The store URL of a fresh schema, whose connections carry a name of
    their own (so a test can end exactly them)."""
    return with_params(URL, schema=schema, application_name=schema)


class Relay:
    """Forwards a local port to PostgreSQL until :meth:`cut`; :meth:`mend`
    listens again on the same port."""

    def __init__(self, host: str | None = None, port: int | None = None) -> None:
        server = urlsplit(URL)  # by default, the tests' server
        self.target = (
            host or server.hostname or "127.0.0.1",
            port or server.port or 5432,
        )
        self.port = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.mend()

    def mend(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and drop every open connection."""
        if self._listener is not None:
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._open:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
