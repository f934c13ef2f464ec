"""The PostgreSQL store's statements, one per store call, for one schema.

Each call is one statement in autocommit mode: one round trip, atomic on the
server, whichever host sends it. Parameters are named; only the quoted schema
name (a checked identifier) is formatted in.
"""

# ruff: noqa: S608 - only the quoted, checked schema name is formatted in.

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Statements"]

# A held key is handed on when its holder's lease ran out, or when the action
# it holds has expired (not purged yet).
_TAKE = (
    "((a.pending AND a.reserved_at <= EXCLUDED.reserved_at - %(lease)s)"
    " OR (a.expires_at IS NOT NULL AND a.expires_at <= EXCLUDED.reserved_at))"
)


def _take(column: str, new: str) -> str:
    return f"{column} = CASE WHEN {_TAKE} THEN {new} ELSE a.{column} END"


# A column is set only while the stored status is not terminal. (Every
# expression of an UPDATE reads the row as it was before.)
def _unless_terminal(column: str) -> str:
    return (
        f"{column} = CASE WHEN a.status = ANY(%(terminal)s) THEN a.{column}"
        f" ELSE %({column})s END"
    )


_LIVE = "NOT a.pending AND (a.expires_at IS NULL OR a.expires_at > %(now)s)"
_ROW = "a.action_id, a.status, a.creator_id, a.public, a.doc"


@dataclass(frozen=True, slots=True)
class Statements:
    reserve: bytes
    create: bytes
    abandon: bytes
    renew: bytes
    get: bytes
    update: bytes
    delete: bytes
    purge: bytes
    purge_abandoned: bytes
    list_by_creator: bytes
    list_by_shared: bytes
    list_by_both: bytes
    get_introspection: bytes
    put_introspection: bytes
    purge_introspections: bytes

    @classmethod
    def of(cls, schema: str) -> Statements:
        actions = f'"{schema}".aptools_actions'
        intro = f'"{schema}".aptools_introspections'
        taken = ", ".join(
            _take(column, new)
            for column, new in (
                ("action_id", "EXCLUDED.action_id"),
                ("fingerprint", "EXCLUDED.fingerprint"),
                ("reserved_at", "EXCLUDED.reserved_at"),
                ("status", "''"),
                ("expires_at", "NULL"),
                ("shared", "'{}'"),
                ("public", "NULL"),
                ("doc", "NULL"),
                ("pending", "true"),
            )
        )
        # The outcome is decided in the statement: the row returned is the
        # one stored afterwards, so it holds this action id exactly when the
        # key was free (inserted) or handed on (updated).
        reserve = (
            f"INSERT INTO {actions} AS a (namespace, action_id, creator_id,"
            " request_id, fingerprint, reserved_at)"
            " VALUES (%(namespace)s, %(action_id)s, %(creator_id)s, %(request_id)s,"
            " %(fingerprint)s, %(now)s)"
            f" ON CONFLICT (namespace, creator_id, request_id) DO UPDATE SET {taken}"
            " RETURNING CASE WHEN a.action_id = %(action_id)s THEN 'new'"
            " WHEN a.fingerprint <> %(fingerprint)s THEN 'conflict'"
            " WHEN a.pending THEN 'pending' ELSE 'existing' END,"
            f" {_ROW}"
        )
        jobs = f'"{schema}".aptools_jobs'
        # An action that ends or goes takes its job's kept tokens along, in
        # the same statement.
        # PERF: ids as an array, so that the jobs' primary key finds the rows
        # (a join with the deleted rows scanned the whole table).
        drop_tokens = (
            f"UPDATE {jobs} SET tokens = NULL WHERE namespace = %(namespace)s"
            " AND action_id = ANY(ARRAY(SELECT action_id FROM gone))"
            " AND tokens IS NOT NULL"
        )
        update = (
            f"WITH ended AS (UPDATE {jobs} SET tokens = NULL"
            " WHERE namespace = %(namespace)s AND action_id = %(action_id)s"
            " AND tokens IS NOT NULL AND %(status)s = ANY(%(terminal)s))"
            f" UPDATE {actions} AS a SET "
            + ", ".join(
                _unless_terminal(column)
                for column in ("status", "expires_at", "public", "doc")
            )
            + f" WHERE a.namespace = %(namespace)s AND a.action_id = %(action_id)s"
            f" AND {_LIVE}"
            # The stored documents come back only when they are not the ones
            # sent (the action was terminal): no bytes travel twice.
            " RETURNING a.action_id, a.status, a.creator_id,"
            " CASE WHEN a.public = %(public)s THEN NULL ELSE a.public END,"
            " CASE WHEN a.doc = %(doc)s THEN NULL ELSE a.doc END"
        )
        listing = (
            f"SELECT {_ROW} FROM {actions} AS a"
            f" WHERE a.namespace = %(namespace)s AND {_LIVE}"
            " AND a.status = ANY(%(statuses)s) AND ({}) ORDER BY a.reserved_at"
        )
        by_creator = "a.creator_id = ANY(%(creators)s)"
        by_shared = "a.shared && %(shared)s::text[]"
        return cls(
            reserve=reserve.encode(),
            create=(
                f"UPDATE {actions} SET pending = false, status = %(status)s,"
                " expires_at = %(expires_at)s, public = %(public)s, doc = %(doc)s,"
                " shared = %(shared)s::text[]"
                " WHERE namespace = %(namespace)s AND action_id = %(action_id)s"
                " AND pending"
            ).encode(),
            abandon=(
                f"DELETE FROM {actions} WHERE namespace = %(namespace)s"
                " AND action_id = %(action_id)s AND pending"
            ).encode(),
            renew=(
                f"UPDATE {actions} SET reserved_at = GREATEST(reserved_at,"
                " %(now)s) WHERE namespace = %(namespace)s"
                " AND action_id = ANY(%(action_ids)s) AND pending"
            ).encode(),
            get=(
                f"SELECT {_ROW} FROM {actions} AS a"
                " WHERE a.namespace = %(namespace)s AND a.action_id = %(action_id)s"
                f" AND {_LIVE}"
            ).encode(),
            update=update.encode(),
            delete=(
                f"WITH gone AS (DELETE FROM {actions} WHERE namespace = %(namespace)s"
                " AND action_id = %(action_id)s RETURNING action_id)"
                f" {drop_tokens}"
            ).encode(),
            # A bounded batch; rows another call holds are left for later,
            # so a purge never waits on a request, nor a request long on it.
            # Answers how many actions went.
            purge=(
                f"WITH gone AS (DELETE FROM {actions} WHERE ctid = ANY(ARRAY("
                f"SELECT ctid FROM {actions} WHERE namespace = %(namespace)s"
                " AND expires_at <= %(now)s LIMIT %(batch)s FOR UPDATE SKIP LOCKED))"
                " RETURNING action_id),"
                f" dropped AS ({drop_tokens})"
                " SELECT count(*) FROM gone"
            ).encode(),
            # Keys still held long after any lease: their holder died and no
            # retry came to take them over.
            purge_abandoned=(
                f"DELETE FROM {actions} WHERE ctid = ANY(ARRAY(SELECT ctid FROM"
                f" {actions} WHERE namespace = %(namespace)s AND pending"
                " AND reserved_at <= %(abandoned)s"
                " LIMIT %(batch)s FOR UPDATE SKIP LOCKED))"
            ).encode(),
            list_by_creator=listing.format(by_creator).encode(),
            list_by_shared=listing.format(by_shared).encode(),
            list_by_both=listing.format(f"{by_creator} OR {by_shared}").encode(),
            get_introspection=(
                f"SELECT expires_at, record FROM {intro}"
                " WHERE namespace = %(namespace)s AND key = %(key)s"
                " AND expires_at > %(now)s"
            ).encode(),
            put_introspection=(
                f"INSERT INTO {intro} (namespace, key, expires_at, record)"
                " VALUES (%(namespace)s, %(key)s, %(expires_at)s, %(record)s)"
                " ON CONFLICT (namespace, key) DO UPDATE"
                " SET expires_at = EXCLUDED.expires_at, record = EXCLUDED.record"
            ).encode(),
            purge_introspections=(
                f"DELETE FROM {intro} WHERE ctid = ANY(ARRAY("
                f"SELECT ctid FROM {intro} WHERE expires_at <= %(now)s"
                " LIMIT %(batch)s FOR UPDATE SKIP LOCKED))"
            ).encode(),
        )
