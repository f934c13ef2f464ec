"""The default store: one SQLite file in WAL mode.

It survives restarts and is shared safely by several worker processes on one
host. A new action costs one write: while its handler runs, the request key
is held by a lock on a byte of the claims file beside it (see
:mod:`aptools.store.sqlite.claims`). Every read-decide-write runs in an
``IMMEDIATE`` transaction.

Every action row carries its provider's namespace. Files made before
namespaces existed (schema version 0) are upgraded in place when first
opened: their actions keep no namespace (``NULL``) and stay visible to
every provider on the file, as they were, until they are released.
"""

from __future__ import annotations

import copy
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from aptools.forks import generation
from aptools.models import Action
from aptools.store.base import (
    CONFLICT,
    NEW,
    PENDING,
    ROLES,
    RequestKey,
    Reservation,
    Store,
    Stored,
)
from aptools.store.sqlite.claims import (
    Claim,
    close_claims,
    open_claims,
    patiently,
)
from aptools.store.sqlite.introspections import SQLiteIntrospections
from aptools.store.sqlite.schema import busy, prepare

if TYPE_CHECKING:
    from aptools.store.sqlite.jobs import SQLiteJobQueue
from aptools.vocabulary import TERMINAL

__all__ = ["SQLiteStore"]

_TERMINAL = tuple(sorted(TERMINAL))
# Rows of this view's namespace, and rows from before namespaces existed.
_MINE = "(namespace = ? OR namespace IS NULL)"
_LIVE = "pending = 0 AND (expires_at IS NULL OR expires_at > ?)"
# Only constants are formatted into these statements.
_GET: Final = (
    "SELECT action_id, status, creator_id, public, doc FROM aptools_actions"  # noqa: S608
    f" WHERE action_id = ? AND {_MINE} AND {_LIVE}"
)
_UPDATE: Final = (
    "UPDATE aptools_actions SET status = ?, expires_at = ?, public = ?, doc = ?"  # noqa: S608
    f" WHERE action_id = ? AND {_MINE} AND status NOT IN (?, ?) AND {_LIVE}"
)
_FIND: Final = (
    "SELECT action_id, fingerprint, pending, expires_at,"  # noqa: S608
    " status, creator_id, public, doc FROM aptools_actions"
    f" WHERE creator_id = ? AND request_id = ? AND {_MINE}"
)
_INSERT: Final = (
    "INSERT INTO aptools_actions (action_id, namespace, creator_id, request_id,"
    " fingerprint, reserved_at, pending, status, expires_at, public, doc)"
    " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
)


class _File:
    """One SQLite file as this process uses it: a connection per thread
    (and per forked worker), and the claims file beside it."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._local = threading.local()
        self._claims_path: str | None = None
        _check_place(path)
        try:
            prepare(self.connection(), timeout)
        except (sqlite3.Error, ValueError) as exc:
            self.close()
            raise ValueError(_explain(path, exc)) from None
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
    def write(self) -> Iterator[sqlite3.Connection]:
        """The calling thread's connection inside an ``IMMEDIATE`` transaction."""
        db = self.connection()
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


def _check_place(path: str) -> None:
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


def _explain(path: str, exc: Exception) -> str:
    reason = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in reason:
        return f"SQLite store {path}: the file is not a SQLite database"
    if "readonly" in reason or "unable to open" in reason:
        return f"SQLite store {path}: cannot open the file for writing ({reason})"
    return f"SQLite store {path}: {reason}"


class SQLiteStore(Store):
    """Actions in a SQLite database file.

    >>> provider = Provider(..., store=SQLiteStore("/var/lib/myprovider/actions.db"))

    The file's directory must exist (:class:`ValueError` names it
    otherwise); the file is made if missing. Each thread (and each forked
    worker) opens its own connection lazily; ``timeout`` (seconds) bounds a
    wait for another process's write lock. Views made by
    :meth:`for_provider` share the connections.
    """

    # PERF: a local SQLite call takes microseconds; running it on the event
    # loop costs less than handing it to a thread.
    io_bound = False

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = str(path)
        self._file = _File(self.path, timeout)
        self._claims = self._file.claims
        self._namespace = ""

    def for_provider(self, namespace: str) -> SQLiteStore:
        # A shallow copy: the same file, connections and claims (and whatever
        # a subclass keeps), another namespace.
        view = copy.copy(self)
        view._namespace = namespace
        return view

    def reserve(
        self, key: RequestKey, action_id: str, now: float, lease: float
    ) -> Reservation:
        creator_id, request_id, fingerprint = key
        held = (self._namespace, creator_id, request_id)
        taken = self._claims.take(held, fingerprint, action_id, now, lease)
        if taken != "new":
            return PENDING if taken == "pending" else CONFLICT
        try:
            row = (
                self._file.connection()
                .execute(_FIND, (creator_id, request_id, self._namespace))
                .fetchone()
            )
            if row is None:
                return NEW
            found, found_print, pending, expires_at = row[:4]
            if not pending and (expires_at is None or expires_at > now):
                self._claims.give(action_id)
                if found_print != fingerprint:
                    return CONFLICT
                return Reservation("existing", Stored(found, *row[4:]))
            # Expired, or a claim row left by an earlier version: gone.
            with self._file.write() as db:
                self._delete(db, found)
        except BaseException:
            self._claims.give(action_id)
            raise
        return NEW

    def renew(self, action_ids: Collection[str], now: float) -> None:
        # Across processes the kernel's lock holds the key while the holder
        # lives; in this process, the claim's age says whether it is stuck.
        self._claims.renew(action_ids, now)

    def create(self, stored: Stored, action: Action, expires_at: float | None) -> None:
        claim = self._claims.held(action.action_id)
        if claim is None or claim.key[0] != self._namespace:
            return  # abandoned, or taken over as stuck: the new holder decides
        try:
            self._insert(claim, stored, action, expires_at)
        finally:
            # Only now may another process look for the key and find it.
            self._claims.give(action.action_id)

    def _insert(
        self, claim: Claim, stored: Stored, action: Action, expires_at: float | None
    ) -> None:
        values = (
            action.action_id,
            *claim.key,
            claim.fingerprint,
            claim.at,
            stored.status,
            expires_at,
            stored.public,
            stored.doc,
        )
        shared = [(p, "monitor_by", action.action_id) for p in action.monitor_by]
        shared += [(p, "manage_by", action.action_id) for p in action.manage_by]
        if not shared:
            # PERF: the one write of a new action.
            self._file.connection().execute(_INSERT, values)
            return
        with self._file.write() as db:
            db.execute(_INSERT, values)
            db.executemany(
                "INSERT OR IGNORE INTO aptools_principals VALUES (?, ?, ?)", shared
            )

    def abandon(self, action_id: str) -> None:
        claim = self._claims.held(action_id)
        if claim is not None and claim.key[0] == self._namespace:
            self._claims.give(action_id)

    def get(self, action_id: str, now: float) -> Stored | None:
        row = (
            self._file.connection()
            .execute(_GET, (action_id, self._namespace, now))
            .fetchone()
        )
        return None if row is None else Stored(*row)

    def update(
        self, action_id: str, stored: Stored, expires_at: float | None, now: float
    ) -> Stored | None:
        changed = (
            self._file.connection()
            .execute(
                _UPDATE,
                (
                    stored.status,
                    expires_at,
                    stored.public,
                    stored.doc,
                    action_id,
                    self._namespace,
                    *_TERMINAL,
                    now,
                ),
            )
            .rowcount
        )
        return stored if changed else self.get(action_id, now)

    def delete(self, action_id: str) -> None:
        with self._file.write() as db:
            self._delete(db, action_id)

    def _delete(self, db: sqlite3.Connection, action_id: str) -> None:
        gone = db.execute(
            f"DELETE FROM aptools_actions WHERE action_id = ? AND {_MINE}",  # noqa: S608
            (action_id, self._namespace),
        ).rowcount
        if gone:
            db.execute(
                "DELETE FROM aptools_principals WHERE action_id = ?", (action_id,)
            )

    def list(
        self,
        principals: Mapping[str, Collection[str]],
        statuses: Collection[str],
        now: float,
    ) -> list[Action]:
        clauses = []
        params: list[object] = []
        for role, wanted in principals.items():
            if role not in ROLES or not wanted:
                continue
            marks = ",".join("?" * len(wanted))
            if role == "creator_id":
                clauses.append(f"a.creator_id IN ({marks})")
            else:
                clauses.append(
                    "a.action_id IN (SELECT p.action_id FROM aptools_principals p"  # noqa: S608
                    f" WHERE p.role = ? AND p.principal IN ({marks}))"
                )
                params.append(role)
            params.extend(wanted)
        if not clauses or not statuses:
            return []
        status_marks = ",".join("?" * len(statuses))
        sql = (
            "SELECT a.action_id, a.status, a.creator_id, a.public, a.doc"  # noqa: S608
            " FROM aptools_actions a WHERE a.pending = 0"
            " AND (a.namespace = ? OR a.namespace IS NULL)"
            f" AND a.status IN ({status_marks})"
            " AND (a.expires_at IS NULL OR a.expires_at > ?)"
            f" AND ({' OR '.join(clauses)})"
            " ORDER BY a.reserved_at"
        )
        rows = (
            self._file.connection()
            .execute(sql, [self._namespace, *statuses, now, *params])
            .fetchall()
        )
        return [Stored(*row).action() for row in rows]

    def purge(self, now: float) -> int:
        with self._file.write() as db:
            gone = [
                action_id
                for (action_id,) in db.execute(
                    "SELECT action_id FROM aptools_actions"  # noqa: S608
                    f" WHERE expires_at <= ? AND {_MINE}",
                    (now, self._namespace),
                )
            ]
            for action_id in gone:
                self._delete(db, action_id)
        return len(gone)

    def introspections(self) -> SQLiteIntrospections:
        """Token introspections of this view's namespace, shared through
        the file by the processes using it."""
        return SQLiteIntrospections(
            self._file.connection, self._claims, self._namespace
        )

    def jobs(self) -> SQLiteJobQueue:
        """Background jobs in table ``aptools_jobs`` of this file."""
        from aptools.store.sqlite.jobs import SQLiteJobQueue

        return SQLiteJobQueue(self._file.connection, self._namespace)

    def close(self) -> None:
        """Close this thread's connection and give back the claims file
        (for every view of this store)."""
        self._file.close()
