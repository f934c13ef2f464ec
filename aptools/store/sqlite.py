"""The default store: one SQLite file in WAL mode.

It survives restarts and is shared safely by several worker processes on one
host: the request key is claimed by a single ``INSERT`` that the unique index
makes atomic, and every read-decide-write runs in an ``IMMEDIATE`` transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from aptools.models import TERMINAL, Action
from aptools.store.base import ROLES, Reservation, Store, Stored

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS aptools_actions (
    action_id   TEXT PRIMARY KEY,
    creator_id  TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    reserved_at REAL NOT NULL,
    pending     INTEGER NOT NULL DEFAULT 1,
    status      TEXT NOT NULL DEFAULT '',
    expires_at  REAL,
    public      BLOB,
    doc         BLOB,
    UNIQUE (creator_id, request_id)
);
CREATE INDEX IF NOT EXISTS aptools_actions_expiry
    ON aptools_actions (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS aptools_principals (
    principal TEXT NOT NULL,
    role      TEXT NOT NULL,
    action_id TEXT NOT NULL,
    PRIMARY KEY (principal, role, action_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aptools_principals_action
    ON aptools_principals (action_id);
"""
_TERMINAL = tuple(sorted(TERMINAL))
_LIVE = "pending = 0 AND (expires_at IS NULL OR expires_at > ?)"
# Only constants are formatted into these statements.
_GET = (
    "SELECT action_id, status, creator_id, public, doc FROM aptools_actions"  # noqa: S608
    f" WHERE action_id = ? AND {_LIVE}"
)
_UPDATE = (
    "UPDATE aptools_actions SET status = ?, expires_at = ?, public = ?, doc = ?"  # noqa: S608
    f" WHERE action_id = ? AND status NOT IN (?, ?) AND {_LIVE}"
)


# How many forks this process descends from. PERF: comparing it is cheaper
# than asking the OS for the process id on every call.
_forks = [0]


def _forked() -> None:
    _forks[0] += 1


os.register_at_fork(after_in_child=_forked)


class SQLiteStore(Store):
    """Actions in a SQLite database file.

    >>> provider = Provider(..., store=SQLiteStore("/var/lib/myprovider/actions.db"))

    Each thread (and each forked worker) opens its own connection lazily.
    """

    # PERF: a local SQLite call takes microseconds; running it on the event
    # loop costs less than handing it to a thread.
    io_bound = False

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = str(path)
        self._timeout = timeout
        self._local = threading.local()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        local = self._local
        db: sqlite3.Connection | None = getattr(local, "db", None)
        # A forked worker must not share its parent's connection.
        if db is None or local.forks != _forks[0]:
            db = sqlite3.connect(
                self.path,
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            local.db = db
            local.forks = _forks[0]
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def reserve(
        self,
        creator_id: str,
        request_id: str,
        fingerprint: str,
        action_id: str,
        now: float,
        lease: float,
    ) -> Reservation:
        claim = (action_id, creator_id, request_id, fingerprint, now)
        insert = (
            "INSERT INTO aptools_actions"
            " (action_id, creator_id, request_id, fingerprint, reserved_at)"
            " VALUES (?, ?, ?, ?, ?)"
        )
        try:
            # PERF: the common case, a new request, is one statement.
            self._db().execute(insert, claim)
            return Reservation("new")
        except sqlite3.IntegrityError:
            pass
        with self._write() as db:
            row = db.execute(
                "SELECT action_id, fingerprint, pending, reserved_at, expires_at,"
                " status, creator_id, public, doc"
                " FROM aptools_actions WHERE creator_id = ? AND request_id = ?",
                (creator_id, request_id),
            ).fetchone()
            if row is not None:
                held, held_print, pending, reserved_at, expires_at = row[:5]
                if expires_at is None or expires_at > now:
                    if held_print != fingerprint:
                        return Reservation("conflict")
                    if not pending:
                        return Reservation("existing", Stored(row[0], *row[5:]))
                    if now - reserved_at < lease:
                        return Reservation("pending")
                _delete(db, held)
            db.execute(insert, claim)
        return Reservation("new")

    def finish(self, stored: Stored, action: Action, expires_at: float | None) -> None:
        values = (
            stored.status,
            expires_at,
            stored.public,
            stored.doc,
            action.action_id,
        )
        update = (
            "UPDATE aptools_actions SET pending = 0, status = ?, expires_at = ?,"
            " public = ?, doc = ? WHERE action_id = ?"
        )
        shared = [(p, "monitor_by", action.action_id) for p in action.monitor_by]
        shared += [(p, "manage_by", action.action_id) for p in action.manage_by]
        if not shared:
            self._db().execute(update, values)
            return
        with self._write() as db:
            db.execute(update, values)
            db.executemany(
                "INSERT OR IGNORE INTO aptools_principals VALUES (?, ?, ?)", shared
            )

    def abandon(self, action_id: str) -> None:
        self.delete(action_id)

    def get(self, action_id: str, now: float) -> Stored | None:
        row = self._db().execute(_GET, (action_id, now)).fetchone()
        return None if row is None else Stored(*row)

    def update(
        self, action_id: str, stored: Stored, expires_at: float | None, now: float
    ) -> Stored | None:
        changed = (
            self._db()
            .execute(
                _UPDATE,
                (
                    stored.status,
                    expires_at,
                    stored.public,
                    stored.doc,
                    action_id,
                    *_TERMINAL,
                    now,
                ),
            )
            .rowcount
        )
        return stored if changed else self.get(action_id, now)

    def delete(self, action_id: str) -> None:
        with self._write() as db:
            _delete(db, action_id)

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
            f" AND a.status IN ({status_marks})"
            " AND (a.expires_at IS NULL OR a.expires_at > ?)"
            f" AND ({' OR '.join(clauses)})"
            " ORDER BY a.reserved_at"
        )
        rows = self._db().execute(sql, [*statuses, now, *params]).fetchall()
        return [Stored(*row).action() for row in rows]

    def purge(self, now: float) -> int:
        with self._write() as db:
            gone = [
                action_id
                for (action_id,) in db.execute(
                    "SELECT action_id FROM aptools_actions WHERE expires_at <= ?",
                    (now,),
                )
            ]
            for action_id in gone:
                _delete(db, action_id)
        return len(gone)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _delete(db: sqlite3.Connection, action_id: str) -> None:
    db.execute("DELETE FROM aptools_actions WHERE action_id = ?", (action_id,))
    db.execute("DELETE FROM aptools_principals WHERE action_id = ?", (action_id,))
