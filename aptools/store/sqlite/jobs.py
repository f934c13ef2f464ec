"""The job queue of a :class:`~aptools.SQLiteStore`: table ``aptools_jobs``
of its file (made and upgraded with the others, :mod:`aptools.store.sqlite.schema`).

Each method is one statement, or one ``IMMEDIATE`` transaction where a job's
row and its action change together (resume, the outcome). Every write of a
claimed job names its fence (``owner`` and ``claims``) in its ``WHERE``. The
clock is this host's: every process using the file runs on it. Rows carry the
provider's namespace, so two providers sharing a file never claim each
other's jobs.
"""

# ruff: noqa: S608 - statements format in constants and placeholders only.

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from aptools.store.jobqueue import Beat, Claimed, Fence, JobQueue, JobRow, lost
from aptools.store.records import Stored
from aptools.store.sqlite.doorbell import Doorbell
from aptools.store.sqlite.jobstatements import (
    ALIVE,
    CLAIM,
    ENDED,
    HAND_BACK,
    HELD,
    IS_HELD,
    SAVE,
    claimed,
    fenced,
)
from aptools.store.sqlite.operating import AHEAD, AHEAD_OF, CLAIM_FAIR, COUNTS
from aptools.store.sqlite.statements import GET, TERMINAL_STATUSES, UPDATE
from aptools.vocabulary import ACTIVE, INACTIVE

if TYPE_CHECKING:
    import sqlite3

    from aptools.store.sqlite.file import File

__all__ = ["SQLiteJobQueue"]


class SQLiteJobQueue(JobQueue):
    """Jobs in table ``aptools_jobs`` of the store's file."""

    def __init__(self, file: File, namespace: str) -> None:
        self._file = file
        self._db = file.connection
        self._ns = namespace
        self._doorbell: Doorbell | None = None

    def now(self) -> float:
        return time.time()

    @property
    def doorbell(self) -> Doorbell:
        """How runners of other processes on this host are woken."""
        if self._doorbell is None:
            self._doorbell = Doorbell(self._file.path, self._ns)
        return self._doorbell

    def announce(self) -> None:
        self.doorbell.ring()

    def listen(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        return self.doorbell.listen(wake)

    def _action(self, stored: Stored, expires_at: float | None) -> tuple[Any, ...]:
        # The parameters of UPDATE, now included.
        return (
            stored.status,
            expires_at,
            stored.public,
            stored.doc,
            stored.action_id,
            self._ns,
            *TERMINAL_STATUSES,
            time.time(),
        )

    def _change(self, sql: str, params: Sequence[object]) -> tuple[int, list[Any]]:
        """One writing statement in this process's turn (see
        :meth:`File.writing`): its row count and its ``RETURNING`` rows."""
        with self._file.writing() as db:
            cursor = db.execute(sql, params)
            rows = cursor.fetchall()
            return cursor.rowcount, rows

    def _fence(self, fence: Fence) -> tuple[str, str, str, int]:
        return (self._ns, fence.action_id, fence.owner, fence.claim)

    def enqueue(
        self,
        action_id: str,
        deadline: float | None,
        caller: Mapping[str, Any],
        tokens: bytes | None = None,
    ) -> None:
        self._change(
            "INSERT OR REPLACE INTO aptools_jobs (namespace, action_id, enqueued_at,"
            " deadline, caller, tokens) VALUES (?, ?, ?, ?, ?, ?)",
            (self._ns, action_id, time.time(), deadline, orjson.dumps(caller), tokens),
        )

    def claim(self, owner: str, lease: float, limit: int) -> list[Claimed]:
        now = time.time()
        _, rows = self._change(
            CLAIM, (owner, now + lease, self._ns, self._ns, now, ACTIVE, limit)
        )
        return claimed(owner, rows)

    def heartbeat(self, fences: Collection[Fence], lease: float) -> list[Beat]:
        if not fences:
            return []
        held, params = fenced(fences)
        _, rows = self._change(
            "UPDATE aptools_jobs SET lease_until = ?"
            f" WHERE namespace = ? AND {held}"
            " RETURNING action_id, cancel_requested",
            (time.time() + lease, self._ns, *params),
        )
        return [Beat(action_id, bool(stop)) for action_id, stop in rows]

    def hand_back(self, fences: Collection[Fence]) -> None:
        if not fences:
            return
        held, params = fenced(fences)
        self._change(f"{HAND_BACK} WHERE namespace = ? AND {held}", (self._ns, *params))

    def interrupt(self, fences: Collection[Fence]) -> None:
        if not fences:
            return
        held, params = fenced(fences)
        self._change(
            "UPDATE aptools_jobs SET owner = NULL, lease_until = 0"
            f" WHERE namespace = ? AND {held}",
            (self._ns, *params),
        )

    def requeue_for(
        self,
        action_id: str,
        stored: Stored,
        caller: Mapping[str, Any],
        tokens: bytes | None,
        deadline: float | None,
    ) -> Stored | None:
        record = orjson.dumps(caller)
        with self._file.write() as db:
            row = db.execute(
                "SELECT deadline FROM aptools_jobs"
                " WHERE namespace = ? AND action_id = ?",
                (self._ns, action_id),
            ).fetchone()
            now = time.time()
            if row is not None and row[0] is not None and row[0] <= now:
                return None
            changed = db.execute(
                f"{UPDATE} AND status = ?", (*self._action(stored, None), INACTIVE)
            ).rowcount
            if not changed:
                return None
            if row is None:
                db.execute(
                    "INSERT INTO aptools_jobs (namespace, action_id, enqueued_at,"
                    " deadline, caller, tokens, claims) VALUES (?, ?, ?, ?, ?, ?, 1)",
                    (self._ns, action_id, now, deadline, record, tokens),
                )
            else:
                db.execute(
                    "UPDATE aptools_jobs SET owner = NULL, lease_until = 0,"
                    " claims = claims + 1, caller = ?, tokens = ?"
                    " WHERE namespace = ? AND action_id = ?",
                    (record, tokens, self._ns, action_id),
                )
        return stored

    def save(
        self, fence: Fence, stored: Stored, expires_at: float | None
    ) -> Stored | None:
        # PERF: one statement when the job is held and its action unfinished.
        changed, _ = self._change(
            SAVE, (*self._action(stored, expires_at), *self._fence(fence))
        )
        if changed:
            return stored
        db = self._db()
        if db.execute(IS_HELD, self._fence(fence)).fetchone() is None:
            raise lost(fence)
        row = db.execute(GET, (fence.action_id, self._ns, time.time())).fetchone()
        return None if row is None else Stored(*row)

    def conclude(
        self, fence: Fence, stored: Stored, expires_at: float | None, keep: bool
    ) -> None:
        with self._file.write() as db:
            self._conclude(db, fence, stored, expires_at, keep)

    def conclude_and_claim(
        self,
        fence: Fence,
        stored: Stored,
        expires_at: float | None,
        keep: bool,
        owner: str,
        lease: float,
        limit: int,
        per_caller: int | None = None,
    ) -> list[Claimed]:
        with self._file.write() as db:
            self._conclude(db, fence, stored, expires_at, keep)
            # After the outcome, in its transaction: the ended job is no
            # longer ACTIVE, or no longer has a row, so it is not claimed.
            now = time.time()
            params = (owner, now + lease, self._ns, self._ns, now, ACTIVE)
            if per_caller is None:
                rows = db.execute(CLAIM, (*params, limit)).fetchall()
            else:
                fair = (*params, self._ns, now, per_caller, limit)
                rows = db.execute(CLAIM_FAIR, fair).fetchall()
        return claimed(owner, rows)

    def _conclude(
        self,
        db: sqlite3.Connection,
        fence: Fence,
        stored: Stored,
        expires_at: float | None,
        keep: bool,
    ) -> None:
        ended = (
            f"{HAND_BACK} WHERE {HELD}"
            if keep
            else f"DELETE FROM aptools_jobs WHERE {HELD}"
        )
        if not db.execute(ended, self._fence(fence)).rowcount:
            raise lost(fence)  # rolls the transaction back: nothing changed
        db.execute(UPDATE, self._action(stored, expires_at))

    def delete(self, fence: Fence) -> bool:
        gone, _ = self._change(
            f"DELETE FROM aptools_jobs WHERE {HELD}", self._fence(fence)
        )
        return bool(gone)

    def request_cancel(self, action_id: str) -> None:
        self._change(
            "UPDATE aptools_jobs SET cancel_requested = 1"
            " WHERE namespace = ? AND action_id = ?",
            (self._ns, action_id),
        )

    def checkpoint(self, fence: Fence, state: bytes) -> None:
        changed, _ = self._change(
            f"UPDATE aptools_jobs SET checkpoint = ? WHERE {HELD}",
            (state, *self._fence(fence)),
        )
        if not changed:
            raise lost(fence)

    def save_tokens(self, fence: Fence, tokens: bytes) -> bool:
        changed, _ = self._change(
            f"UPDATE aptools_jobs SET tokens = ? WHERE {HELD}"
            f" AND action_id IN ({ALIVE})",
            (tokens, *self._fence(fence)),
        )
        return bool(changed)

    def kept_tokens(self) -> dict[str, bytes]:
        rows = self._db().execute(
            "SELECT action_id, tokens FROM aptools_jobs"
            " WHERE namespace = ? AND tokens IS NOT NULL",
            (self._ns,),
        )
        return {action_id: bytes(tokens) for action_id, tokens in rows}

    def replace_tokens(self, action_id: str, old: bytes, new: bytes) -> bool:
        # Unfenced (an operator's re-key), but never on an ended action.
        changed, _ = self._change(
            "UPDATE aptools_jobs SET tokens = ?"
            " WHERE namespace = ? AND action_id = ? AND tokens = ?"
            f" AND action_id NOT IN ({ENDED})",
            (new, self._ns, action_id, old),
        )
        return bool(changed)

    def due(self) -> list[str]:
        rows = (
            self._db()
            .execute(
                "SELECT action_id FROM aptools_jobs"
                " WHERE namespace = ? AND deadline <= ?"
                f" AND action_id IN ({ALIVE})",
                (self._ns, time.time()),
            )
            .fetchall()
        )
        return [action_id for (action_id,) in rows]

    def sweep(self, grace: float) -> int:
        now = time.time()
        gone, _ = self._change(
            "DELETE FROM aptools_jobs"
            " WHERE namespace = ? AND lease_until < ? AND enqueued_at < ?"
            f" AND action_id NOT IN ({ALIVE})",
            (self._ns, now, now - grace),
        )
        return gone

    def rows(self) -> list[JobRow]:
        found = (
            self._db()
            .execute(
                "SELECT action_id, enqueued_at, deadline, caller, owner,"
                " lease_until, attempts, claims, cancel_requested"
                " FROM aptools_jobs WHERE namespace = ? ORDER BY enqueued_at",
                (self._ns,),
            )
            .fetchall()
        )
        return [
            JobRow(a, e, d, orjson.loads(c), o, lu, at, cl, bool(cr))
            for a, e, d, c, o, lu, at, cl, cr in found
        ]

    def take(self, action_id: str, owner: str, lease: float) -> Fence | None:
        _, rows = self._change(
            "UPDATE aptools_jobs SET owner = ?, lease_until = ?,"
            " claims = claims + 1 WHERE namespace = ? AND action_id = ?"
            " RETURNING claims",
            (owner, self.now() + lease, self._ns, action_id),
        )
        return Fence(action_id, owner, rows[0][0]) if rows else None

    def keep_trace(self, action_id: str, traceparent: str) -> None:
        self._change(
            "UPDATE aptools_jobs SET traceparent = ?"
            " WHERE namespace = ? AND action_id = ?",
            (traceparent, self._ns, action_id),
        )

    def origin(self, action_id: str) -> tuple[str | None, float] | None:
        row = (
            self._db()
            .execute(
                "SELECT traceparent, enqueued_at FROM aptools_jobs"
                " WHERE namespace = ? AND action_id = ?",
                (self._ns, action_id),
            )
            .fetchone()
        )
        return None if row is None else (row[0], float(row[1]))

    def counts(self) -> dict[str, int]:
        rows = self._db().execute(COUNTS, (time.time(), self._ns)).fetchall()
        return {"queued": 0, "running": 0, "waiting": 0, **dict(rows)}

    def claim_fair(
        self, owner: str, lease: float, limit: int, per_caller: int
    ) -> list[Claimed]:
        # One statement: SQLite runs one writer at a time, so the count of a
        # caller's held jobs cannot change under it.
        now = time.time()
        params = (owner, now + lease, self._ns, self._ns, now, ACTIVE)
        _, rows = self._change(CLAIM_FAIR, (*params, self._ns, now, per_caller, limit))
        return claimed(owner, rows)

    def ahead(self, identity_id: str) -> int:
        row = self._db().execute(AHEAD, (self._ns, identity_id)).fetchone()
        return int(row[0])

    def ahead_of(self, action_id: str) -> int | None:
        row = (
            self._db().execute(AHEAD_OF, (time.time(), self._ns, action_id)).fetchone()
        )
        return None if row is None else int(row[0])
