"""The SQLite job queue's statements for operating a provider: fair share
per caller (the claim, the jobs ahead of a caller's next and of a waiting
job) and the job metrics' counts
(:class:`~aptools.store.sqlite.jobs.SQLiteJobQueue` runs them)."""

# ruff: noqa: S608 - statements format in constants and placeholders only.

from __future__ import annotations

from typing import Final

from aptools.vocabulary import ACTIVE, INACTIVE

__all__ = ["AHEAD", "AHEAD_OF", "CLAIM_FAIR", "COUNTS"]

# The caller of a job row (its record is JSON text in a BLOB).
_WHO: Final = "json_extract(CAST({}.caller AS TEXT), '$.identity_id')"
# A claim as the plain one, taking no caller past a cap on jobs held at once: each
# claimable job ranked among its caller's, plus the caller's held jobs.
CLAIM_FAIR: Final = f"""
UPDATE aptools_jobs SET owner = ?, lease_until = ?, attempts = attempts + 1,
    claims = claims + 1
WHERE namespace = ? AND action_id IN (
    SELECT c.action_id FROM (
        SELECT j.action_id, j.lease_until, j.enqueued_at, {_WHO.format("j")} AS who,
            row_number() OVER (PARTITION BY {_WHO.format("j")}
                ORDER BY j.lease_until, j.enqueued_at) AS rank
        FROM aptools_jobs j JOIN aptools_actions a ON a.action_id = j.action_id
        WHERE j.namespace = ? AND j.lease_until < ? AND j.cancel_requested = 0
          AND a.status = ?) c
    WHERE c.rank + (SELECT count(*) FROM aptools_jobs h
        WHERE h.namespace = ? AND h.owner IS NOT NULL AND h.lease_until >= ?
          AND {_WHO.format("h")} = c.who) <= ?
    ORDER BY c.lease_until, c.enqueued_at LIMIT ?)
RETURNING action_id, attempts, checkpoint, caller, tokens, claims
"""
AHEAD: Final = f"""
SELECT count(*) FROM aptools_jobs j JOIN aptools_actions a ON a.action_id = j.action_id
WHERE j.namespace = ? AND a.status = '{ACTIVE}' AND {_WHO.format("j")} = ?
"""
# The caller's jobs ahead of one waiting its turn (the ? are now, namespace,
# action id): running, or queued and claimed before it (CLAIM_FAIR's order).
AHEAD_OF: Final = f"""
SELECT (SELECT count(*) FROM aptools_jobs j
    JOIN aptools_actions a ON a.action_id = j.action_id
    WHERE j.namespace = m.namespace AND j.action_id != m.action_id
      AND a.status = '{ACTIVE}' AND {_WHO.format("j")} = {_WHO.format("m")}
      AND ((j.owner IS NOT NULL AND j.lease_until >= n.now)
        OR (j.lease_until < n.now AND j.cancel_requested = 0
          AND (j.lease_until, j.enqueued_at) < (m.lease_until, m.enqueued_at))))
FROM (SELECT ? AS now) n, aptools_jobs m
JOIN aptools_actions ma ON ma.action_id = m.action_id
WHERE m.namespace = ? AND m.action_id = ? AND ma.status = '{ACTIVE}'
  AND m.lease_until < n.now AND m.cancel_requested = 0
"""
# Unfinished jobs by state (the job metrics' gauges).
COUNTS: Final = f"""
SELECT CASE WHEN a.status = '{INACTIVE}' THEN 'waiting'
    WHEN j.owner IS NOT NULL AND j.lease_until >= ? THEN 'running'
    ELSE 'queued' END AS state, count(*)
FROM aptools_jobs j JOIN aptools_actions a ON a.action_id = j.action_id
WHERE j.namespace = ? AND a.status IN ('{ACTIVE}', '{INACTIVE}')
GROUP BY state
"""
