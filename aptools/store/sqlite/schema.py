"""The SQLite file's tables (actions, principals, introspections, jobs), and
their upgrade from files of older versions.

The schema's version is the file's ``PRAGMA user_version``:

- 0: files made before provider namespaces (no version was written). Their
  ``aptools_actions`` table is rebuilt with a ``namespace`` column, each
  action kept with ``NULL`` there: it stays visible to every provider on the
  file, as it was, until it is released. Request keys become unique per
  namespace.
- 1: namespaces. Its job table, when there is one, was made by the job
  queue itself when first opened.
- 2: the job table ``aptools_jobs`` is part of the schema.
- 3: job rows count their claims (``claims``, the fencing number of
  :class:`aptools.store.jobqueue.Fence`).
- 4: job rows keep the W3C ``traceparent`` of the run request that queued
  them (``NULL`` when none was recorded).
- 5: this version: each caller's run bucket (``max_runs_per_caller``) is
  kept in ``aptools_run_rates``.

The upgrade runs once, in one ``IMMEDIATE`` transaction; processes opening
the file meanwhile wait for it. A file whose version is current is opened
without any write (and so without waiting for other writers).
"""

from __future__ import annotations

import sqlite3
from typing import Final

from aptools.store.sqlite.claims import patiently

__all__ = ["VERSION", "busy", "prepare"]

VERSION: Final = 5

_ACTIONS: Final = """
CREATE TABLE IF NOT EXISTS {name} (
    action_id   TEXT PRIMARY KEY,
    namespace   TEXT,
    creator_id  TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    reserved_at REAL NOT NULL,
    pending     INTEGER NOT NULL DEFAULT 1,
    status      TEXT NOT NULL DEFAULT '',
    expires_at  REAL,
    public      BLOB,
    doc         BLOB,
    UNIQUE (creator_id, request_id, namespace)
)
"""
_REST: Final = (
    "CREATE INDEX IF NOT EXISTS aptools_actions_expiry"
    " ON aptools_actions (expires_at) WHERE expires_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS aptools_principals (
        principal TEXT NOT NULL,
        role      TEXT NOT NULL,
        action_id TEXT NOT NULL,
        PRIMARY KEY (principal, role, action_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS aptools_principals_action"
    " ON aptools_principals (action_id)",
    """CREATE TABLE IF NOT EXISTS aptools_introspections (
        key        BLOB PRIMARY KEY,
        expires_at REAL NOT NULL,
        record     BLOB NOT NULL
    ) WITHOUT ROWID""",
    # Background jobs (aptools.store.sqlite.jobs): one row per job, beside
    # its action (same namespace and action id) until the job ends.
    """CREATE TABLE IF NOT EXISTS aptools_jobs (
        namespace        TEXT NOT NULL,
        action_id        TEXT NOT NULL,
        enqueued_at      REAL NOT NULL,
        deadline         REAL,
        owner            TEXT,
        lease_until      REAL NOT NULL DEFAULT 0,
        attempts         INTEGER NOT NULL DEFAULT 0,
        claims           INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        checkpoint       BLOB,
        caller           BLOB NOT NULL,
        tokens           BLOB,
        traceparent      TEXT,
        PRIMARY KEY (namespace, action_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS aptools_jobs_claimable"
    " ON aptools_jobs (namespace, lease_until, enqueued_at)",
    "CREATE INDEX IF NOT EXISTS aptools_jobs_deadline"
    " ON aptools_jobs (namespace, deadline) WHERE deadline IS NOT NULL",
    # Each caller's run bucket (aptools.store.runrates): when it is full again.
    """CREATE TABLE IF NOT EXISTS aptools_run_rates (
        namespace   TEXT NOT NULL,
        identity_id TEXT NOT NULL,
        full_at     REAL NOT NULL,
        PRIMARY KEY (namespace, identity_id)
    ) WITHOUT ROWID""",
)
# The columns of version 0's table, all kept.
_V0_COLUMNS: Final = (
    "action_id, creator_id, request_id, fingerprint, reserved_at, pending,"
    " status, expires_at, public, doc"
)


def _version(db: sqlite3.Connection) -> int:
    found: int = db.execute("PRAGMA user_version").fetchone()[0]
    return found


def prepare(db: sqlite3.Connection, timeout: float) -> None:
    """Make the tables, or bring an older file's up to :data:`VERSION`.

    Raises :class:`ValueError` for a file made by a newer version, and
    :class:`sqlite3.Error` when the file cannot be read or written.
    """
    version = _version(db)
    if version == VERSION:
        return
    if version > VERSION:
        raise ValueError(
            f"the file was made by a newer aptools (schema version {version};"
            f" this one knows up to {VERSION})"
        )
    patiently(lambda: _upgrade(db), busy, timeout)


def busy(exc: Exception) -> bool:
    """True for SQLite's "database is locked" answered at once.

    SQLite answers some collisions of processes opening a new file at once
    (switching it to WAL, a read turning into a write) so, without waiting on
    its busy timeout; trying again shortly after succeeds.
    """
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _upgrade(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _version(db)
        if version < VERSION:  # not done by another process meanwhile
            old = db.execute(
                "SELECT 1 FROM sqlite_master"
                " WHERE type = 'table' AND name = 'aptools_actions'"
            ).fetchone()
            if old is None:
                db.execute(_ACTIONS.format(name="aptools_actions"))
            elif version == 0:
                # SQLite cannot change a table's constraints: make the new
                # table, copy, drop the old one, rename (its indexes go too).
                db.execute(_ACTIONS.format(name="aptools_actions_new"))
                db.execute(
                    f"INSERT INTO aptools_actions_new ({_V0_COLUMNS})"  # noqa: S608
                    f" SELECT {_V0_COLUMNS} FROM aptools_actions"
                )
                db.execute("DROP TABLE aptools_actions")
                db.execute("ALTER TABLE aptools_actions_new RENAME TO aptools_actions")
            for statement in _REST:
                db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(aptools_jobs)")}
            if "claims" not in columns:  # a job table of version 1 or 2
                db.execute(
                    "ALTER TABLE aptools_jobs"
                    " ADD COLUMN claims INTEGER NOT NULL DEFAULT 0"
                )
            if "traceparent" not in columns:  # a job table of version 1 to 3
                db.execute("ALTER TABLE aptools_jobs ADD COLUMN traceparent TEXT")
            db.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
