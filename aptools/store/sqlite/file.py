"""One SQLite file as a process uses it: a connection per thread (and per
forked worker), its transactions, and the claims file beside it.

SQLite lets one connection write at a time; one waiting for the write lock
sleeps in steps of milliseconds (1, 2, 5, 10 ms... its busy handler), long
after the lock came free. So the writes of one process's threads take turns
at a lock of the process first (:meth:`File.writing`, :meth:`File.write`),
and only writers of other processes meet at SQLite's.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aptools.forks import PerProcess, generation
from aptools.store.sqlite.claims import close_claims, open_claims, patiently
from aptools.store.sqlite.schema import busy, prepare

__all__ = ["File"]


class File:
    """One SQLite file as this process uses it: a connection per thread
    (and per forked worker), and the claims file beside it."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._local = threading.local()
        # PERF: sixteen job threads draining 2,000 empty jobs, each ending its
        # job in an IMMEDIATE transaction, met at SQLite's lock: 8,700-9,100
        # busy-handler sleeps of 1-50 ms per drain (strace), none in turns.
        self._turns: PerProcess[threading.Lock] = PerProcess(threading.Lock)
        self._claims_path: str | None = None
        check_place(path)
        try:
            prepare(self.connection(), timeout)
        except (sqlite3.Error, ValueError) as exc:
            self.close()
            raise ValueError(explain(path, exc)) from None
        self._claims_path = os.path.realpath(path) + "-claims"
        try:
            self.claims = open_claims(self._claims_path)
        except OSError as exc:
            self._claims_path = None
            self.close()
            raise ValueError(
                f"SQLite store {path}: cannot open its claims file"
                f" {exc.filename}: {exc.strerror}"
            ) from None

    def connection(self) -> sqlite3.Connection:
        """The calling thread's connection, opened on first use."""
        local = self._local
        db: sqlite3.Connection | None = getattr(local, "db", None)
        # A forked worker must not share its parent's connection.
        if db is None or local.forks != generation():
            db = sqlite3.connect(
                self.path,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                patiently(
                    lambda: db.execute("PRAGMA journal_mode=WAL"), busy, self.timeout
                )
                db.execute("PRAGMA synchronous=NORMAL")
            except BaseException:
                db.close()
                raise
            local.db = db
            local.forks = generation()
        return db

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """The calling thread's connection, while this process's other
        threads write nothing: for one writing statement (its rows fetched
        inside the block). Not reentrant. Waits at most ``timeout`` seconds
        for the turn, then raises :class:`sqlite3.OperationalError`
        ("database is locked"), as SQLite's own wait does."""
        db = self.connection()
        turn = self._turns.get()
        if not turn.acquire(timeout=min(self.timeout, threading.TIMEOUT_MAX)):
            raise sqlite3.OperationalError("database is locked")
        try:
            yield db
        finally:
            turn.release()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """The calling thread's connection inside an ``IMMEDIATE`` transaction,
        taken in turn with this process's other writes (:meth:`writing`)."""
        with self.writing() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        if self._claims_path is not None:
            close_claims(self._claims_path, self.claims)
            self._claims_path = None
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def check_place(path: str) -> None:
    """Refuse a path whose directory is missing: the store lives where it is
    configured, and a typo must not grow a new, empty store elsewhere."""
    if path == ":memory:" or path.startswith("file:"):
        raise ValueError(
            f"SQLite store {path}: give the path of a file (an in-memory SQLite"
            " database is private to one connection; the memory store,"
            " 'memory:', keeps actions in memory)"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        what = "is not a directory" if os.path.exists(folder) else "does not exist"
        raise ValueError(f"SQLite store {path}: the directory {folder} {what}")
    if os.path.isdir(path):
        raise ValueError(f"SQLite store {path}: is a directory, not a database file")


def explain(path: str, exc: Exception) -> str:
    reason = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in reason:
        return f"SQLite store {path}: the file is not a SQLite database"
    if "readonly" in reason or "unable to open" in reason:
        return f"SQLite store {path}: cannot open the file for writing ({reason})"
    return f"SQLite store {path}: {reason}"
