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
import time
from collections.abc import Collection, Mapping

from aptools.errors import StoreUnavailable
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
)
from aptools.store.sqlite.file import File
from aptools.store.sqlite.introspections import SQLiteIntrospections
from aptools.store.sqlite.jobs import SQLiteJobQueue
from aptools.store.sqlite.schema import VERSION
from aptools.store.sqlite.statements import (
    COUNT_RUN,
    DROP_TOKENS,
    FIND,
    GET,
    INSERT,
    MINE,
    PURGE_RATES,
    RUN_WAIT,
    TERMINAL_STATUSES,
    UPDATE,
)
from aptools.vocabulary import TERMINAL

__all__ = ["SQLiteStore"]


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
        self._file = File(self.path, timeout)
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
                .execute(FIND, (creator_id, request_id, self._namespace))
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
            with self._file.writing() as db:
                db.execute(INSERT, values)
            return
        with self._file.write() as db:
            db.execute(INSERT, values)
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
            .execute(GET, (action_id, self._namespace, now))
            .fetchone()
        )
        return None if row is None else Stored(*row)

    def update(
        self, action_id: str, stored: Stored, expires_at: float | None, now: float
    ) -> Stored | None:
        values = (
            stored.status,
            expires_at,
            stored.public,
            stored.doc,
            action_id,
            self._namespace,
            *TERMINAL_STATUSES,
            now,
        )
        if stored.status in TERMINAL:
            # An action that ends takes its job's kept tokens along, in the
            # same transaction.
            with self._file.write() as db:
                changed = db.execute(UPDATE, values).rowcount
                db.execute(DROP_TOKENS, (self._namespace, action_id))
        else:
            # PERF: one statement, no transaction, for every other change.
            with self._file.writing() as db:
                changed = db.execute(UPDATE, values).rowcount
        return stored if changed else self.get(action_id, now)

    def delete(self, action_id: str) -> None:
        with self._file.write() as db:
            self._delete(db, action_id)

    def _delete(self, db: sqlite3.Connection, action_id: str) -> None:
        gone = db.execute(
            f"DELETE FROM aptools_actions WHERE action_id = ? AND {MINE}",  # noqa: S608
            (action_id, self._namespace),
        ).rowcount
        if gone:
            db.execute(
                "DELETE FROM aptools_principals WHERE action_id = ?", (action_id,)
            )
        db.execute(DROP_TOKENS, (self._namespace, action_id))

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
                    f" WHERE expires_at <= ? AND {MINE}",
                    (now, self._namespace),
                )
            ]
            for action_id in gone:
                self._delete(db, action_id)
            db.execute(PURGE_RATES, (self._namespace, now))
        return len(gone)

    def count_run(self, identity_id: str, runs: int, per: float) -> float:
        # One statement: SQLite runs one writer at a time, across processes.
        step, now = per / runs, time.time()
        params = (self._namespace, identity_id, now, step, per)
        db = self._file.connection()
        if db.execute(COUNT_RUN, params).fetchone() is not None:
            return 0.0
        row = db.execute(RUN_WAIT, (now, step, per, now, *params[:2])).fetchone()
        return step if row is None else max(float(row[0]), 1e-3)

    def introspections(self) -> SQLiteIntrospections:
        """Token introspections of this view's namespace, shared through
        the file by the processes using it."""
        return SQLiteIntrospections(
            self._file.connection, self._claims, self._namespace
        )

    def jobs(self) -> SQLiteJobQueue:
        """Background jobs in table ``aptools_jobs`` of this file."""
        return SQLiteJobQueue(self._file, self._namespace)

    def ready(self) -> None:
        """Ready while the file is still at its path, answers a read and
        is at schema :data:`~aptools.store.sqlite.schema.VERSION`."""
        if not os.path.exists(self.path):
            raise StoreUnavailable("The SQLite file is no longer at its path.")
        try:
            db = self._file.connection()
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute("SELECT 1 FROM aptools_actions LIMIT 1").fetchall()
        except sqlite3.Error:
            raise StoreUnavailable("The SQLite file cannot be read.") from None
        if version != VERSION:
            raise StoreUnavailable(
                f"The SQLite file is at schema version {version}; this aptools"
                f" expects {VERSION}."
            )

    def close(self) -> None:
        """Close this thread's connection and give back the claims file
        (for every view of this store)."""
        self._file.close()
