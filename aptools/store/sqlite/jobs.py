"""The job queue of a :class:`~aptools.SQLiteStore`: table ``aptools_jobs``
of its file (made and upgraded with the others, :mod:`aptools.store.sqlite.schema`).

Each method is one statement, written so that it ports to PostgreSQL as it
stands (a claim is one ``UPDATE ... RETURNING``; there, add ``FOR UPDATE SKIP
LOCKED`` to the inner ``SELECT``). Rows carry the provider's namespace, so two
providers sharing a file never claim each other's jobs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Mapping
from typing import Any

import orjson

from aptools.store.jobqueue import Beat, Claimed, JobQueue
from aptools.vocabulary import ACTIVE, INACTIVE

__all__ = ["SQLiteJobQueue"]

# Statements take only constants by formatting; values are parameters.
# PERF: the claim walks the index in its order and stops at LIMIT (never
# claimed first, by age; then leases that ran out): 0.3 ms with 1,000 jobs
# queued, where sorting them by age alone took 4.4 ms.
_CLAIM = """
UPDATE aptools_jobs SET owner = ?, lease_until = ?, attempts = attempts + 1
WHERE namespace = ? AND action_id IN (
    SELECT j.action_id FROM aptools_jobs j
    JOIN aptools_actions a ON a.action_id = j.action_id
    WHERE j.namespace = ? AND j.lease_until < ? AND j.cancel_requested = 0
      AND a.status = ?
    ORDER BY j.lease_until, j.enqueued_at LIMIT ?)
RETURNING action_id, attempts, checkpoint, caller, tokens
"""
_ALIVE = (
    "SELECT action_id FROM aptools_actions"  # noqa: S608 - constants only
    f" WHERE status IN ('{ACTIVE}', '{INACTIVE}')"
)


class SQLiteJobQueue(JobQueue):
    """Jobs in table ``aptools_jobs`` of the store's file.

    ``connect`` is the store's per-thread connection helper (autocommit).
    """

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], namespace: str
    ) -> None:
        self._db = connect
        self._ns = namespace

    def enqueue(
        self,
        action_id: str,
        now: float,
        deadline: float | None,
        caller: Mapping[str, Any],
        tokens: bytes | None = None,
    ) -> None:
        self._db().execute(
            "INSERT OR REPLACE INTO aptools_jobs (namespace, action_id, enqueued_at,"
            " deadline, caller, tokens) VALUES (?, ?, ?, ?, ?, ?)",
            (self._ns, action_id, now, deadline, orjson.dumps(caller), tokens),
        )

    def claim(self, owner: str, now: float, lease: float, limit: int) -> list[Claimed]:
        rows = (
            self._db()
            .execute(
                _CLAIM,
                (owner, now + lease, self._ns, self._ns, now, ACTIVE, limit),
            )
            .fetchall()
        )
        return [
            Claimed(
                action_id,
                attempts,
                None if checkpoint is None else orjson.loads(checkpoint),
                orjson.loads(caller),
                tokens,
            )
            for action_id, attempts, checkpoint, caller, tokens in rows
        ]

    def heartbeat(
        self, owner: str, action_ids: Collection[str], now: float, lease: float
    ) -> list[Beat]:
        if not action_ids:
            return []
        marks = ",".join("?" * len(action_ids))
        rows = (
            self._db()
            .execute(
                "UPDATE aptools_jobs SET lease_until = ?"  # noqa: S608
                f" WHERE namespace = ? AND owner = ? AND action_id IN ({marks})"
                " RETURNING action_id, cancel_requested",
                (now + lease, self._ns, owner, *action_ids),
            )
            .fetchall()
        )
        return [Beat(action_id, bool(stop)) for action_id, stop in rows]

    def hand_back(self, owner: str, action_ids: Collection[str]) -> None:
        if not action_ids:
            return
        marks = ",".join("?" * len(action_ids))
        self._db().execute(
            "UPDATE aptools_jobs SET owner = NULL, lease_until = 0,"  # noqa: S608
            " attempts = attempts - 1"
            f" WHERE namespace = ? AND owner = ? AND action_id IN ({marks})",
            (self._ns, owner, *action_ids),
        )

    def interrupt(self, owner: str, action_ids: Collection[str]) -> None:
        if not action_ids:
            return
        marks = ",".join("?" * len(action_ids))
        self._db().execute(
            "UPDATE aptools_jobs SET owner = NULL, lease_until = 0"  # noqa: S608
            f" WHERE namespace = ? AND owner = ? AND action_id IN ({marks})",
            (self._ns, owner, *action_ids),
        )

    def requeue_for(
        self, action_id: str, caller: Mapping[str, Any], tokens: bytes | None
    ) -> bool:
        changed = (
            self._db()
            .execute(
                "UPDATE aptools_jobs SET owner = NULL, lease_until = 0, caller = ?,"
                " tokens = ? WHERE namespace = ? AND action_id = ?",
                (orjson.dumps(caller), tokens, self._ns, action_id),
            )
            .rowcount
        )
        return bool(changed)

    def delete(self, action_id: str) -> None:
        self._db().execute(
            "DELETE FROM aptools_jobs WHERE namespace = ? AND action_id = ?",
            (self._ns, action_id),
        )

    def request_cancel(self, action_id: str) -> None:
        self._db().execute(
            "UPDATE aptools_jobs SET cancel_requested = 1"
            " WHERE namespace = ? AND action_id = ?",
            (self._ns, action_id),
        )

    def checkpoint(self, owner: str, action_id: str, state: bytes) -> bool:
        changed = (
            self._db()
            .execute(
                "UPDATE aptools_jobs SET checkpoint = ?"
                " WHERE namespace = ? AND action_id = ? AND owner = ?",
                (state, self._ns, action_id, owner),
            )
            .rowcount
        )
        return bool(changed)

    def save_tokens(self, owner: str, action_id: str, tokens: bytes) -> bool:
        changed = (
            self._db()
            .execute(
                "UPDATE aptools_jobs SET tokens = ?"
                " WHERE namespace = ? AND action_id = ? AND owner = ?",
                (tokens, self._ns, action_id, owner),
            )
            .rowcount
        )
        return bool(changed)

    def due(self, now: float) -> list[str]:
        rows = (
            self._db()
            .execute(
                "SELECT action_id FROM aptools_jobs"  # noqa: S608
                " WHERE namespace = ? AND deadline <= ?"
                f" AND action_id IN ({_ALIVE})",
                (self._ns, now),
            )
            .fetchall()
        )
        return [action_id for (action_id,) in rows]

    def sweep(self, now: float, grace: float) -> int:
        return int(
            self._db()
            .execute(
                "DELETE FROM aptools_jobs"  # noqa: S608
                " WHERE namespace = ? AND lease_until < ? AND enqueued_at < ?"
                f" AND action_id NOT IN ({_ALIVE})",
                (self._ns, now, now - grace),
            )
            .rowcount
        )
