"""The SQL of the SQLite store's actions, by name (the job queue's is in
:mod:`aptools.store.sqlite.jobs`). Only constants are formatted in; values
are parameters."""

# ruff: noqa: S608 - constants only

from __future__ import annotations

from typing import Final

from aptools.vocabulary import TERMINAL

__all__ = [
    "DROP_TOKENS",
    "FIND",
    "GET",
    "INSERT",
    "LIVE",
    "MINE",
    "TERMINAL_STATUSES",
    "UPDATE",
]

TERMINAL_STATUSES: Final = tuple(sorted(TERMINAL))
# Rows of this view's namespace, and rows from before namespaces existed.
MINE: Final = "(namespace = ? OR namespace IS NULL)"
LIVE: Final = "pending = 0 AND (expires_at IS NULL OR expires_at > ?)"
# Only constants are formatted into these statements.
GET: Final = (
    "SELECT action_id, status, creator_id, public, doc FROM aptools_actions"
    f" WHERE action_id = ? AND {MINE} AND {LIVE}"
)
# Parameters: status, expires_at, public, doc, action_id, namespace, the
# terminal statuses, now. The job queue adds conditions of its own.
UPDATE: Final = (
    "UPDATE aptools_actions SET status = ?, expires_at = ?, public = ?, doc = ?"
    f" WHERE action_id = ? AND {MINE} AND status NOT IN (?, ?) AND {LIVE}"
)
FIND: Final = (
    "SELECT action_id, fingerprint, pending, expires_at,"
    " status, creator_id, public, doc FROM aptools_actions"
    f" WHERE creator_id = ? AND request_id = ? AND {MINE}"
)
INSERT: Final = (
    "INSERT INTO aptools_actions (action_id, namespace, creator_id, request_id,"
    " fingerprint, reserved_at, pending, status, expires_at, public, doc)"
    " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
)
# An action that ended or went takes its job's kept tokens along (in the
# same transaction as that change). Parameters: namespace, action_id.
DROP_TOKENS: Final = (
    "UPDATE aptools_jobs SET tokens = NULL"
    " WHERE namespace = ? AND action_id = ? AND tokens IS NOT NULL"
)
# One run counted against a caller's bucket (aptools.store.runrates), or
# nothing: ?1 namespace, ?2 identity id, ?3 now, ?4 per / runs, ?5 per.
COUNT_RUN: Final = """
INSERT INTO aptools_run_rates AS r (namespace, identity_id, full_at)
VALUES (?1, ?2, ?3 + ?4)
ON CONFLICT (namespace, identity_id) DO UPDATE SET full_at = max(r.full_at, ?3) + ?4
WHERE max(r.full_at, ?3) + ?4 - ?5 <= ?3
RETURNING full_at
"""
# The seconds until a refused caller's bucket holds a run again.
RUN_WAIT: Final = (
    "SELECT max(full_at, ?) + ? - ? - ? FROM aptools_run_rates"
    " WHERE namespace = ? AND identity_id = ?"
)
# Buckets full again: as good as none.
PURGE_RATES: Final = (
    "DELETE FROM aptools_run_rates WHERE namespace = ? AND full_at <= ?"
)
