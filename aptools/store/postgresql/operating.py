"""The PostgreSQL job queue's statements for operating a provider: the job
console's listing and requeue, fair share per caller, and the trace context
kept with a job (:class:`~aptools.store.postgresql.jobs.PostgresJobQueue`
runs them)."""

# ruff: noqa: S608 - only the quoted, checked schema name is formatted in.

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aptools.store.postgresql.schema import lock_key
from aptools.vocabulary import ACTIVE, INACTIVE

__all__ = ["Statements", "operating_statements"]

#: The database's clock, in POSIX seconds (the statement's start).
_NOW: Final = "extract(epoch from now())::float8"


@dataclass(slots=True, frozen=True)
class Statements:
    """The statements of one namespace's queue (bytes, psycopg's ``%s``)."""

    rows_all: bytes
    fair_lock: bytes
    fair_key: int
    claim_fair: bytes
    ahead: bytes
    ahead_of: bytes
    keep_trace: bytes
    origin: bytes
    counts: bytes


def operating_statements(
    jobs: str, actions: str, schema: str, namespace: str
) -> Statements:
    """The statements for tables ``jobs`` and ``actions`` (quoted, qualified
    names) of ``schema``, for the provider ``namespace``."""
    rows_all = (
        "SELECT action_id, enqueued_at, deadline, caller, owner, lease_until,"
        f" attempts, claims, cancel_requested FROM {jobs}"
        " WHERE namespace = %s ORDER BY enqueued_at"
    ).encode()
    # Fair share: claims of a namespace take turns (an advisory lock for
    # the transaction), so the count of a caller's held jobs cannot
    # change under one; each claimable job is ranked among its caller's.
    fair_lock = b"SELECT pg_advisory_xact_lock(%s)"
    fair_key = lock_key("fair-claim", schema, namespace)
    who = "({}.caller->>'identity_id')"
    claim_fair = (
        f"UPDATE {jobs} SET owner = %s, lease_until = {_NOW} + %s,"
        " attempts = attempts + 1, claims = claims + 1"
        " WHERE namespace = %s AND action_id = ANY(ARRAY("
        "  SELECT c.action_id FROM ("
        f"   SELECT j.action_id, j.lease_until, j.enqueued_at, {who.format('j')}"
        f"    AS who, row_number() OVER (PARTITION BY {who.format('j')}"
        "    ORDER BY j.lease_until, j.enqueued_at) AS rank"
        f"   FROM {jobs} j JOIN {actions} a ON a.namespace = j.namespace"
        "    AND a.action_id = j.action_id"
        f"   WHERE j.namespace = %s AND j.lease_until < {_NOW}"
        "    AND NOT j.cancel_requested AND a.status = %s) c"
        f"  WHERE c.rank + (SELECT count(*) FROM {jobs} h"
        "   WHERE h.namespace = %s AND h.owner IS NOT NULL"
        f"   AND h.lease_until >= {_NOW} AND {who.format('h')} = c.who) <= %s"
        "  ORDER BY c.lease_until, c.enqueued_at LIMIT %s))"
        " RETURNING action_id, attempts, checkpoint, caller, tokens, claims"
    ).encode()
    ahead = (
        f"SELECT count(*) FROM {jobs} j JOIN {actions} a"
        " ON a.namespace = j.namespace AND a.action_id = j.action_id"
        f" WHERE j.namespace = %s AND a.status = '{ACTIVE}'"
        f" AND {who.format('j')} = %s"
    ).encode()
    # The caller's jobs ahead of one waiting its turn: running, or queued
    # and claimed before it (claim_fair's order), on the database's clock.
    ahead_of = (
        f"SELECT (SELECT count(*) FROM {jobs} j JOIN {actions} a"
        " ON a.namespace = j.namespace AND a.action_id = j.action_id"
        " WHERE j.namespace = m.namespace AND j.action_id <> m.action_id"
        f" AND a.status = '{ACTIVE}' AND {who.format('j')} = {who.format('m')}"
        f" AND ((j.owner IS NOT NULL AND j.lease_until >= {_NOW})"
        f" OR (j.lease_until < {_NOW} AND NOT j.cancel_requested"
        " AND (j.lease_until, j.enqueued_at) < (m.lease_until, m.enqueued_at))))"
        f" FROM {jobs} m JOIN {actions} ma ON ma.namespace = m.namespace"
        " AND ma.action_id = m.action_id"
        " WHERE m.namespace = %s AND m.action_id = %s"
        f" AND ma.status = '{ACTIVE}' AND m.lease_until < {_NOW}"
        " AND NOT m.cancel_requested"
    ).encode()
    keep_trace = (
        f"UPDATE {jobs} SET traceparent = %s WHERE namespace = %s AND action_id = %s"
    ).encode()
    origin = (
        f"SELECT traceparent, enqueued_at FROM {jobs}"
        " WHERE namespace = %s AND action_id = %s"
    ).encode()
    counts = (
        f"SELECT CASE WHEN a.status = '{INACTIVE}' THEN 'waiting'"
        f" WHEN j.owner IS NOT NULL AND j.lease_until >= {_NOW} THEN 'running'"
        " ELSE 'queued' END AS state, count(*)"
        f" FROM {jobs} j JOIN {actions} a ON a.namespace = j.namespace"
        " AND a.action_id = j.action_id WHERE j.namespace = %s"
        f" AND a.status IN ('{ACTIVE}', '{INACTIVE}') GROUP BY state"
    ).encode()
    return Statements(
        rows_all=rows_all,
        fair_lock=fair_lock,
        fair_key=fair_key,
        claim_fair=claim_fair,
        ahead=ahead,
        ahead_of=ahead_of,
        keep_trace=keep_trace,
        origin=origin,
        counts=counts,
    )
