"""The job queue of a :class:`~aptools.store.postgresql.PostgreSQLStore`.

Jobs live in table ``aptools_jobs`` of the store's schema (created by the
store's migrations, :mod:`aptools.store.postgresql.schema`), beside its
``aptools_actions``. Each method is one statement in autocommit, sent through
the store's per-process pool (:meth:`Database.run`): a forked worker never
uses its parent's connections, a broken idle connection is replaced, and an
unreachable or slow database raises :class:`aptools.StoreUnavailable`, as
every store call does. A claim locks the rows it takes with ``FOR UPDATE
SKIP LOCKED``, so processes on many hosts claim at once without waiting for
each other and never take the same job twice.
"""

# ruff: noqa: S608 - only the quoted, checked schema name is formatted in.

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from psycopg.types.json import Jsonb

from aptools.store.jobqueue import Beat, Claimed, JobQueue
from aptools.vocabulary import ACTIVE, INACTIVE

if TYPE_CHECKING:
    from aptools.store.postgresql.database import Conn, Database

__all__ = ["PostgresJobQueue"]


class PostgresJobQueue(JobQueue):
    """The jobs of one provider (``namespace``) in the store behind ``db``."""

    def __init__(self, db: Database, namespace: str) -> None:
        self._db = db
        self._ns = namespace
        schema = f'"{db.settings.schema}"'
        jobs, actions = f"{schema}.aptools_jobs", f"{schema}.aptools_actions"
        # The job's action, in its namespace, still ACTIVE or INACTIVE.
        alive = (
            f"EXISTS (SELECT 1 FROM {actions} a WHERE a.namespace = j.namespace"
            " AND a.action_id = j.action_id"
            f" AND a.status IN ('{ACTIVE}', '{INACTIVE}'))"
        )
        self._enqueue = (
            f"INSERT INTO {jobs} (namespace, action_id, enqueued_at, deadline,"
            " caller, tokens) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (namespace, action_id) DO UPDATE SET"
            " enqueued_at = EXCLUDED.enqueued_at, deadline = EXCLUDED.deadline,"
            " caller = EXCLUDED.caller, tokens = EXCLUDED.tokens"
        ).encode()
        # PERF: the inner SELECT walks the claimable index in its order and
        # stops at LIMIT, as the SQLite queue's does.
        self._claim = (
            f"UPDATE {jobs} SET owner = %s, lease_until = %s,"
            " attempts = attempts + 1"
            " WHERE namespace = %s AND action_id IN ("
            f"  SELECT j.action_id FROM {jobs} j"
            f"  JOIN {actions} a ON a.namespace = j.namespace"
            "   AND a.action_id = j.action_id"
            "  WHERE j.namespace = %s AND j.lease_until < %s"
            "   AND NOT j.cancel_requested AND a.status = %s"
            "  ORDER BY j.lease_until, j.enqueued_at LIMIT %s"
            "  FOR UPDATE OF j SKIP LOCKED)"
            " RETURNING action_id, attempts, checkpoint, caller, tokens"
        ).encode()
        self._heartbeat = (
            f"UPDATE {jobs} SET lease_until = %s"
            " WHERE namespace = %s AND owner = %s AND action_id = ANY(%s)"
            " RETURNING action_id, cancel_requested"
        ).encode()
        self._release = (
            f"UPDATE {jobs} SET owner = NULL, lease_until = 0,"
            " attempts = attempts - 1"
            " WHERE namespace = %s AND owner = %s AND action_id = ANY(%s)"
        ).encode()
        self._interrupt = (
            f"UPDATE {jobs} SET owner = NULL, lease_until = 0"
            " WHERE namespace = %s AND owner = %s AND action_id = ANY(%s)"
        ).encode()
        self._delete = (
            f"DELETE FROM {jobs} WHERE namespace = %s AND action_id = %s"
        ).encode()
        self._cancel = (
            f"UPDATE {jobs} SET cancel_requested = true"
            " WHERE namespace = %s AND action_id = %s"
        ).encode()
        self._checkpoint = (
            f"UPDATE {jobs} SET checkpoint = %s"
            " WHERE namespace = %s AND action_id = %s AND owner = %s"
        ).encode()
        self._tokens = (
            f"UPDATE {jobs} SET tokens = %s"
            " WHERE namespace = %s AND action_id = %s AND owner = %s"
        ).encode()
        self._due = (
            f"SELECT j.action_id FROM {jobs} j WHERE j.namespace = %s"
            f" AND j.deadline <= %s AND {alive}"
        ).encode()
        self._resume = (
            f"UPDATE {jobs} SET owner = NULL, lease_until = 0, caller = %s,"
            " tokens = %s WHERE namespace = %s AND action_id = %s"
        ).encode()
        self._sweep = (
            f"DELETE FROM {jobs} j WHERE j.namespace = %s AND j.lease_until < %s"
            f" AND j.enqueued_at < %s AND NOT {alive}"
        ).encode()

    def __repr__(self) -> str:
        return f"PostgresJobQueue(namespace={self._ns!r})"

    def _rows(self, statement: bytes, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def fetch(conn: Conn) -> list[tuple[Any, ...]]:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description is not None else []

        return self._db.run(fetch)

    def _count(self, statement: bytes, params: tuple[Any, ...]) -> int:
        def execute(conn: Conn) -> int:
            return conn.execute(statement, params).rowcount

        return self._db.run(execute)

    def enqueue(
        self,
        action_id: str,
        now: float,
        deadline: float | None,
        caller: Mapping[str, Any],
        tokens: bytes | None = None,
    ) -> None:
        self._count(
            self._enqueue,
            (self._ns, action_id, now, deadline, Jsonb(dict(caller)), tokens),
        )

    def claim(self, owner: str, now: float, lease: float, limit: int) -> list[Claimed]:
        rows = self._rows(
            self._claim, (owner, now + lease, self._ns, self._ns, now, ACTIVE, limit)
        )
        return [
            Claimed(
                action_id,
                attempts,
                None if checkpoint is None else orjson.loads(checkpoint),
                caller,
                None if tokens is None else bytes(tokens),
            )
            for action_id, attempts, checkpoint, caller, tokens in rows
        ]

    def heartbeat(
        self, owner: str, action_ids: Collection[str], now: float, lease: float
    ) -> list[Beat]:
        if not action_ids:
            return []
        rows = self._rows(
            self._heartbeat, (now + lease, self._ns, owner, list(action_ids))
        )
        return [Beat(action_id, bool(stop)) for action_id, stop in rows]

    def hand_back(self, owner: str, action_ids: Collection[str]) -> None:
        if action_ids:
            self._count(self._release, (self._ns, owner, list(action_ids)))

    def interrupt(self, owner: str, action_ids: Collection[str]) -> None:
        if action_ids:
            self._count(self._interrupt, (self._ns, owner, list(action_ids)))

    def requeue_for(
        self, action_id: str, caller: Mapping[str, Any], tokens: bytes | None
    ) -> bool:
        return bool(
            self._count(
                self._resume, (Jsonb(dict(caller)), tokens, self._ns, action_id)
            )
        )

    def delete(self, action_id: str) -> None:
        self._count(self._delete, (self._ns, action_id))

    def request_cancel(self, action_id: str) -> None:
        self._count(self._cancel, (self._ns, action_id))

    def checkpoint(self, owner: str, action_id: str, state: bytes) -> bool:
        return bool(self._count(self._checkpoint, (state, self._ns, action_id, owner)))

    def save_tokens(self, owner: str, action_id: str, tokens: bytes) -> bool:
        return bool(self._count(self._tokens, (tokens, self._ns, action_id, owner)))

    def due(self, now: float) -> list[str]:
        return [a for (a,) in self._rows(self._due, (self._ns, now))]

    def sweep(self, now: float, grace: float) -> int:
        return self._count(self._sweep, (self._ns, now, now - grace))
