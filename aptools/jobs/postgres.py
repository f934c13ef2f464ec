"""The job queue in PostgreSQL: the SQLite queue's statements, ported.

For a PostgreSQL action store: it takes the store's connection pool
(``psycopg_pool.ConnectionPool``) and the name of its actions table (a table
with ``action_id`` and ``status`` columns). Each method is one statement in
autocommit; a claim locks the rows it takes with ``FOR UPDATE SKIP LOCKED``,
so processes on many hosts claim at once without waiting for each other and
never take the same job twice.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import orjson
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from aptools.jobs.queue import Beat, Claimed, JobQueue
from aptools.vocabulary import ACTIVE, INACTIVE

__all__ = ["PostgresJobQueue"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS aptools_jobs (
    namespace        TEXT NOT NULL,
    action_id        TEXT NOT NULL,
    enqueued_at      DOUBLE PRECISION NOT NULL,
    deadline         DOUBLE PRECISION,
    owner            TEXT,
    lease_until      DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    checkpoint       BYTEA,
    caller           JSONB NOT NULL,
    tokens           BYTEA,
    PRIMARY KEY (namespace, action_id)
);
CREATE INDEX IF NOT EXISTS aptools_jobs_claimable
    ON aptools_jobs (namespace, lease_until, enqueued_at);
CREATE INDEX IF NOT EXISTS aptools_jobs_deadline
    ON aptools_jobs (namespace, deadline) WHERE deadline IS NOT NULL;
"""


class PostgresJobQueue(JobQueue):
    """Jobs in table ``aptools_jobs`` beside the store's ``actions`` table."""

    def __init__(
        self,
        pool: ConnectionPool[Any],
        namespace: str,
        actions: str = "aptools_actions",
    ) -> None:
        self._pool = pool
        self._ns = namespace
        table = sql.Identifier(actions)
        alive = sql.SQL("SELECT action_id FROM {} WHERE status IN ({}, {})").format(
            table, sql.Literal(ACTIVE), sql.Literal(INACTIVE)
        )
        self._claim = sql.SQL(
            "UPDATE aptools_jobs SET owner = %s, lease_until = %s,"
            " attempts = attempts + 1"
            " WHERE namespace = %s AND action_id IN ("
            "  SELECT j.action_id FROM aptools_jobs j"
            "  JOIN {} a ON a.action_id = j.action_id"
            "  WHERE j.namespace = %s AND j.lease_until < %s"
            "   AND NOT j.cancel_requested AND a.status = %s"
            "  ORDER BY j.lease_until, j.enqueued_at LIMIT %s"
            "  FOR UPDATE OF j SKIP LOCKED)"
            " RETURNING action_id, attempts, checkpoint, caller, tokens"
        ).format(table)
        self._due = sql.SQL(
            "SELECT action_id FROM aptools_jobs WHERE namespace = %s"
            " AND deadline <= %s AND action_id IN ({})"
        ).format(alive)
        self._sweep = sql.SQL(
            "DELETE FROM aptools_jobs WHERE namespace = %s AND lease_until < %s"
            " AND enqueued_at < %s AND action_id NOT IN ({})"
        ).format(alive)
        with pool.connection() as conn:
            conn.execute(SCHEMA)

    def _run(self, statement: Any, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description is not None else []

    def _count(self, statement: Any, params: tuple[Any, ...]) -> int:
        with self._pool.connection() as conn:
            return int(conn.execute(statement, params).rowcount)

    def enqueue(
        self,
        action_id: str,
        now: float,
        deadline: float | None,
        caller: Mapping[str, Any],
        tokens: bytes | None = None,
    ) -> None:
        self._run(
            "INSERT INTO aptools_jobs (namespace, action_id, enqueued_at, deadline,"
            " caller, tokens) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (namespace, action_id) DO UPDATE SET"
            " enqueued_at = EXCLUDED.enqueued_at, deadline = EXCLUDED.deadline,"
            " caller = EXCLUDED.caller, tokens = EXCLUDED.tokens",
            (self._ns, action_id, now, deadline, Jsonb(dict(caller)), tokens),
        )

    def claim(self, owner: str, now: float, lease: float, limit: int) -> list[Claimed]:
        rows = self._run(
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
        rows = self._run(
            "UPDATE aptools_jobs SET lease_until = %s"
            " WHERE namespace = %s AND owner = %s AND action_id = ANY(%s)"
            " RETURNING action_id, cancel_requested",
            (now + lease, self._ns, owner, list(action_ids)),
        )
        return [Beat(action_id, bool(stop)) for action_id, stop in rows]

    def release(self, owner: str, action_ids: Collection[str]) -> None:
        if action_ids:
            self._run(
                "UPDATE aptools_jobs SET owner = NULL, lease_until = 0,"
                " attempts = attempts - 1"
                " WHERE namespace = %s AND owner = %s AND action_id = ANY(%s)",
                (self._ns, owner, list(action_ids)),
            )

    def resume(
        self, action_id: str, caller: Mapping[str, Any], tokens: bytes | None
    ) -> bool:
        return bool(
            self._count(
                "UPDATE aptools_jobs SET owner = NULL, lease_until = 0, caller = %s,"
                " tokens = %s WHERE namespace = %s AND action_id = %s",
                (Jsonb(dict(caller)), tokens, self._ns, action_id),
            )
        )

    def finish(self, action_id: str) -> None:
        self._run(
            "DELETE FROM aptools_jobs WHERE namespace = %s AND action_id = %s",
            (self._ns, action_id),
        )

    def request_cancel(self, action_id: str) -> None:
        self._run(
            "UPDATE aptools_jobs SET cancel_requested = TRUE"
            " WHERE namespace = %s AND action_id = %s",
            (self._ns, action_id),
        )

    def checkpoint(self, owner: str, action_id: str, state: bytes) -> bool:
        return bool(
            self._count(
                "UPDATE aptools_jobs SET checkpoint = %s"
                " WHERE namespace = %s AND action_id = %s AND owner = %s",
                (state, self._ns, action_id, owner),
            )
        )

    def save_tokens(self, owner: str, action_id: str, tokens: bytes) -> bool:
        return bool(
            self._count(
                "UPDATE aptools_jobs SET tokens = %s"
                " WHERE namespace = %s AND action_id = %s AND owner = %s",
                (tokens, self._ns, action_id, owner),
            )
        )

    def due(self, now: float) -> list[str]:
        return [a for (a,) in self._run(self._due, (self._ns, now))]

    def sweep(self, now: float, grace: float) -> int:
        return self._count(self._sweep, (self._ns, now, now - grace))
