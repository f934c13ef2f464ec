"""The PostgreSQL job queue's statements that claim and end jobs: the claim,
a job's outcome and its row's end in one statement
(:meth:`~aptools.store.jobqueue.JobQueue.conclude`), and the same claiming
the holder's next jobs
(:meth:`~aptools.store.jobqueue.JobQueue.conclude_and_claim`); and the
reading of claimed rows into fenced jobs."""

# ruff: noqa: S608 - only the quoted, checked schema name is formatted in.

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from aptools.store.jobqueue import Claimed, Fence
from aptools.store.records import Stored

__all__ = ["CLAIMED", "Ending", "claimed_fairly", "claimed_row", "ending_statements"]

#: The database's clock, in POSIX seconds (the statement's start).
_NOW: Final = "extract(epoch from now())::float8"
_HELD: Final = "namespace = %s AND action_id = %s AND owner = %s AND claims = %s"
#: What a claim returns of each job: the job row's fields, then its action's.
CLAIMED: Final = (
    "j.action_id, j.attempts, j.checkpoint, j.caller, j.tokens,"
    " j.claims, a.status, a.creator_id, a.public, a.doc, a.pending"
)


@dataclass(slots=True, frozen=True)
class Ending:
    """The statements of one schema's queue that claim and end jobs (bytes,
    psycopg's ``%s``): ``claim`` claims, ``conclude`` deletes the ended
    job's row, ``conclude_keep`` hands it back; the ``_claim`` ones also
    claim (parameters: the conclusion's, then the claim's ``namespace,
    status, ended action_id, limit, owner, lease, namespace``) and return
    the count of rows ended first."""

    claim: bytes
    conclude: bytes
    conclude_keep: bytes
    conclude_claim: bytes
    conclude_keep_claim: bytes


def ending_statements(jobs: str, actions: str) -> Ending:
    """The statements for tables ``jobs`` and ``actions`` (quoted, qualified
    names)."""
    # PERF: the inner SELECT walks the claimable index in its order and
    # stops at LIMIT, as the SQLite queue's does.
    # PERF: the claimed jobs' actions come back with them, so a job's
    # start costs the runner no read of its own (2 statements per empty
    # job instead of 3: the claim and the outcome).
    claim = (
        # Materialized (it locks rows): the LIMIT holds whatever the plan.
        "WITH picked AS ("
        f"  SELECT q.action_id FROM {jobs} q"
        f"  JOIN {actions} qa ON qa.namespace = q.namespace"
        "   AND qa.action_id = q.action_id"
        f"  WHERE q.namespace = %s AND q.lease_until < {_NOW}"
        "   AND NOT q.cancel_requested AND qa.status = %s"
        "  ORDER BY q.lease_until, q.enqueued_at LIMIT %s"
        "  FOR UPDATE OF q SKIP LOCKED),"
        # PERF: the claim's commit does not wait for the disk (one flush
        # fewer per job; benchmarks/README.md, job queues). Lost in a crash of
        # the database, it is as if never made: the job is claimable again,
        # and the holder's fenced writes are refused (their durable
        # commits would have flushed the claim first).
        " relaxed AS MATERIALIZED"
        " (SELECT set_config('synchronous_commit', 'off', true))"
        f" UPDATE {jobs} j SET owner = %s, lease_until = {_NOW} + %s,"
        " attempts = j.attempts + 1, claims = j.claims + 1"
        f" FROM picked, relaxed, {actions} a"
        " WHERE j.namespace = %s AND j.action_id = picked.action_id"
        " AND a.namespace = j.namespace AND a.action_id = j.action_id"
        f" RETURNING {CLAIMED}"
    ).encode()
    set_action = "status = %s, expires_at = %s, public = %s, doc = %s"
    unfinished = "NOT a.pending AND a.status <> ALL(%s)"
    hand_back = "owner = NULL, lease_until = 0, attempts = attempts - 1"
    # One statement, so one transaction: the outcome and the row's end.
    conclude = (
        "WITH ended AS ({}),"
        f" stored AS (UPDATE {actions} a SET {set_action} FROM ended"
        " WHERE a.namespace = %s AND a.action_id = ended.action_id"
        f" AND {unfinished} RETURNING 1)"
    )
    counted = " SELECT count(*) FROM ended"
    # PERF: the holder's next job in the same statement (and commit) as its
    # outcome: one transaction per job instead of two, and each job thread
    # claims for itself (benchmarks/README.md, job queues). All of it sees
    # one snapshot: the ended job is left out by name, and nothing is
    # claimed unless the job was still held (ended). Its commit waits for
    # the disk, as the outcome's must.
    claiming = (
        ", picked AS ("
        f"  SELECT q.action_id FROM {jobs} q"
        f"  JOIN {actions} qa ON qa.namespace = q.namespace"
        "   AND qa.action_id = q.action_id"
        f"  WHERE q.namespace = %s AND q.lease_until < {_NOW}"
        "   AND NOT q.cancel_requested AND qa.status = %s AND q.action_id <> %s"
        "   AND EXISTS (SELECT 1 FROM ended)"
        "  ORDER BY q.lease_until, q.enqueued_at LIMIT %s"
        "  FOR UPDATE OF q SKIP LOCKED),"
        f" claimed AS (UPDATE {jobs} j SET owner = %s,"
        f" lease_until = {_NOW} + %s,"
        " attempts = j.attempts + 1, claims = j.claims + 1"
        f" FROM picked, {actions} a"
        " WHERE j.namespace = %s AND j.action_id = picked.action_id"
        " AND a.namespace = j.namespace AND a.action_id = j.action_id"
        f" RETURNING {CLAIMED})"
        " SELECT (SELECT count(*) FROM ended), claimed.*"
        " FROM (SELECT 1) one LEFT JOIN claimed ON true"
    )
    delete = f"DELETE FROM {jobs} WHERE {_HELD} RETURNING action_id"
    keep = f"UPDATE {jobs} SET {hand_back} WHERE {_HELD} RETURNING action_id"
    return Ending(
        claim=claim,
        conclude=(conclude.format(delete) + counted).encode(),
        conclude_keep=(conclude.format(keep) + counted).encode(),
        conclude_claim=(conclude.format(delete) + claiming).encode(),
        conclude_keep_claim=(conclude.format(keep) + claiming).encode(),
    )


def claimed_row(owner: str, row: tuple[Any, ...]) -> Claimed:
    """A job a claim took, from its row (:data:`CLAIMED`)."""
    return Claimed(
        row[0],
        row[1],
        None if row[2] is None else orjson.loads(row[2]),
        row[3],
        None if row[4] is None else bytes(row[4]),
        Fence(row[0], owner, row[5]),
        None if row[10] else Stored(row[0], *row[6:10]),
    )


def claimed_fairly(owner: str, rows: list[tuple[Any, ...]]) -> list[Claimed]:
    """The jobs a fair claim took (without their actions)."""
    return [
        Claimed(
            action_id,
            attempts,
            None if checkpoint is None else orjson.loads(checkpoint),
            caller,
            None if tokens is None else bytes(tokens),
            Fence(action_id, owner, claims),
        )
        for action_id, attempts, checkpoint, caller, tokens, claims in rows
    ]
