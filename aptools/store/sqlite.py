"""The default store: one SQLite file in WAL mode.

It survives restarts and is shared safely by several worker processes on one
host: every write that decides something runs in an ``IMMEDIATE`` transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import orjson

from aptools.models import TERMINAL, Action
from aptools.store.base import ROLES, Reservation, Store

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
        if db is None or local.pid != os.getpid():
            db = sqlite3.connect(
                self.path,
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            local.db = db
            local.pid = os.getpid()
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
        with self._write() as db:
            row = db.execute(
                "SELECT action_id, fingerprint, pending, reserved_at, expires_at, doc"
                " FROM aptools_actions WHERE creator_id = ? AND request_id = ?",
                (creator_id, request_id),
            ).fetchone()
            if row is not None:
                held, held_print, pending, reserved_at, expires_at, doc = row
                if expires_at is None or expires_at > now:
                    if held_print != fingerprint:
                        return Reservation("conflict")
                    if not pending:
                        return Reservation("existing", _load(doc))
                    if now - reserved_at < lease:
                        return Reservation("pending")
                _delete(db, held)
            db.execute(
                "INSERT INTO aptools_actions"
                " (action_id, creator_id, request_id, fingerprint, reserved_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (action_id, creator_id, request_id, fingerprint, now),
            )
        return Reservation("new")

    def finish(self, action: Action, expires_at: float | None) -> None:
        principals = [(action.creator_id, "creator_id", action.action_id)]
        principals += [(p, "monitor_by", action.action_id) for p in action.monitor_by]
        principals += [(p, "manage_by", action.action_id) for p in action.manage_by]
        with self._write() as db:
            db.execute(
                "UPDATE aptools_actions SET pending = 0, status = ?, expires_at = ?,"
                " doc = ? WHERE action_id = ?",
                (
                    action.status,
                    expires_at,
                    orjson.dumps(action.to_doc()),
                    action.action_id,
                ),
            )
            db.executemany(
                "INSERT OR IGNORE INTO aptools_principals VALUES (?, ?, ?)", principals
            )

    def abandon(self, action_id: str) -> None:
        self.delete(action_id)

    def get(self, action_id: str, now: float) -> Action | None:
        row = (
            self._db()
            .execute(
                "SELECT doc FROM aptools_actions WHERE action_id = ? AND pending = 0"
                " AND (expires_at IS NULL OR expires_at > ?)",
                (action_id, now),
            )
            .fetchone()
        )
        return None if row is None else _load(row[0])

    def update(
        self, action: Action, expires_at: float | None, now: float
    ) -> Action | None:
        with self._write() as db:
            changed = db.execute(
                "UPDATE aptools_actions SET status = ?, expires_at = ?, doc = ?"
                " WHERE action_id = ? AND pending = 0 AND status NOT IN (?, ?)"
                " AND (expires_at IS NULL OR expires_at > ?)",
                (
                    action.status,
                    expires_at,
                    orjson.dumps(action.to_doc()),
                    action.action_id,
                    *_TERMINAL,
                    now,
                ),
            ).rowcount
            if changed:
                return Action.from_doc(action.to_doc())
            row = db.execute(
                "SELECT doc FROM aptools_actions WHERE action_id = ? AND pending = 0"
                " AND (expires_at IS NULL OR expires_at > ?)",
                (action.action_id, now),
            ).fetchone()
        return None if row is None else _load(row[0])

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
            clauses.append(f"(p.role = ? AND p.principal IN ({marks}))")
            params.append(role)
            params.extend(wanted)
        if not clauses or not statuses:
            return []
        status_marks = ",".join("?" * len(statuses))
        sql = (
            "SELECT a.doc FROM aptools_actions a WHERE a.pending = 0"  # noqa: S608
            f" AND a.status IN ({status_marks})"
            " AND (a.expires_at IS NULL OR a.expires_at > ?)"
            " AND a.action_id IN (SELECT p.action_id FROM aptools_principals p"
            f" WHERE {' OR '.join(clauses)})"
            " ORDER BY a.reserved_at"
        )
        rows = self._db().execute(sql, [*statuses, now, *params]).fetchall()
        return [_load(doc) for (doc,) in rows]

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


def _load(doc: bytes) -> Action:
    return Action.from_doc(orjson.loads(doc))
