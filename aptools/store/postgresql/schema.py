"""The PostgreSQL store's tables, and how they are created and migrated.

At start-up every process calls :func:`migrate`. It takes a transaction-level
advisory lock of the schema, so of many processes starting at once (on any
number of hosts) one creates or upgrades the tables while the others wait,
then find them current. The version lives in ``aptools_schema``; a database
migrated by a newer aptools than this one is refused with
:class:`SchemaTooNew` rather than written in a shape it does not know.

An upgrade is a deploy: the first process of the new version to start
applies the missing steps of :data:`MIGRATIONS`, each in the same
transaction as its version row, so a failure leaves the previous version.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import psycopg

__all__ = [
    "MIGRATIONS",
    "VERSION",
    "SchemaTooNew",
    "found_version",
    "lock_key",
    "migrate",
]


class SchemaTooNew(RuntimeError, ValueError):
    """The database was migrated by a newer aptools than this one.

    A :class:`ValueError` as well, as the SQLite store's file of a newer
    aptools is: a store this aptools cannot open, which every command reports
    as one line (:data:`aptools.cli.common.STORE_ERRORS`)."""


# Step i takes the schema from version i to i + 1. ``{s}`` is the quoted
# schema name. Only ever append: a deployed step never changes.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        # One row per request key: the action it holds (pending while its run
        # handler runs), then the action's state. ``shared`` holds the
        # principals of the other roles as "<role> <urn>".
        """CREATE TABLE {s}.aptools_actions (
            namespace   text NOT NULL,
            action_id   text NOT NULL,
            creator_id  text NOT NULL,
            request_id  text NOT NULL,
            fingerprint text NOT NULL,
            reserved_at double precision NOT NULL,
            pending     boolean NOT NULL DEFAULT true,
            status      text NOT NULL DEFAULT '',
            expires_at  double precision,
            shared      text[] NOT NULL DEFAULT '{{}}',
            public      bytea,
            doc         bytea,
            PRIMARY KEY (namespace, action_id),
            UNIQUE (namespace, creator_id, request_id)
        )""",
        """CREATE INDEX aptools_actions_creator ON {s}.aptools_actions
            (namespace, creator_id, status) WHERE NOT pending""",
        """CREATE INDEX aptools_actions_shared ON {s}.aptools_actions
            USING gin (shared) WHERE NOT pending""",
        """CREATE INDEX aptools_actions_expiry ON {s}.aptools_actions
            (namespace, expires_at) WHERE expires_at IS NOT NULL""",
        """CREATE INDEX aptools_actions_pending ON {s}.aptools_actions
            (namespace, reserved_at) WHERE pending""",
        """CREATE TABLE {s}.aptools_introspections (
            namespace  text NOT NULL,
            key        bytea NOT NULL,
            expires_at double precision NOT NULL,
            record     bytea NOT NULL,
            PRIMARY KEY (namespace, key)
        )""",
        """CREATE INDEX aptools_introspections_expiry
            ON {s}.aptools_introspections (expires_at)""",
    ),
    (
        # Background jobs (aptools.store.postgresql.jobs): one row per job, beside its
        # action (same namespace and action id) until the job ends.
        """CREATE TABLE {s}.aptools_jobs (
            namespace        text NOT NULL,
            action_id        text NOT NULL,
            enqueued_at      double precision NOT NULL,
            deadline         double precision,
            owner            text,
            lease_until      double precision NOT NULL DEFAULT 0,
            attempts         integer NOT NULL DEFAULT 0,
            cancel_requested boolean NOT NULL DEFAULT false,
            checkpoint       bytea,
            caller           jsonb NOT NULL,
            tokens           bytea,
            PRIMARY KEY (namespace, action_id)
        )""",
        """CREATE INDEX aptools_jobs_claimable ON {s}.aptools_jobs
            (namespace, lease_until, enqueued_at)""",
        """CREATE INDEX aptools_jobs_deadline ON {s}.aptools_jobs
            (namespace, deadline) WHERE deadline IS NOT NULL""",
    ),
    (
        # Job rows count their claims: the fencing number every write of a
        # claimed job carries (aptools.store.jobqueue.Fence).
        """ALTER TABLE {s}.aptools_jobs
            ADD COLUMN claims integer NOT NULL DEFAULT 0""",
    ),
    (
        # Job rows keep the W3C traceparent of the run request that queued
        # them, so that the job's span joins its trace on any host.
        """ALTER TABLE {s}.aptools_jobs ADD COLUMN traceparent text""",
    ),
    (
        # Each caller's run bucket (max_runs_per_caller): when it is full
        # again (aptools.store.postgresql.rates).
        """CREATE TABLE {s}.aptools_run_rates (
            namespace   text NOT NULL,
            identity_id text NOT NULL,
            full_at     double precision NOT NULL,
            PRIMARY KEY (namespace, identity_id)
        )""",
    ),
)
VERSION: Final = len(MIGRATIONS)


def lock_key(*parts: str | bytes) -> int:
    """A 64-bit advisory lock key for ``parts`` (``pg_advisory_lock`` takes
    a signed bigint)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return int.from_bytes(digest.digest()[:8], "big", signed=True)


def found_version(conn: psycopg.Connection[Any], schema: str) -> int:
    """The version ``schema`` is at: 0 when it has no ``aptools_schema``
    table (or no schema at all). Reads only. Raises :class:`SchemaTooNew`
    if it is newer than :data:`VERSION`."""
    quoted = f'"{schema}"'
    row = conn.execute(
        "SELECT to_regclass(%s)", (f"{quoted}.aptools_schema",)
    ).fetchone()
    found = 0
    if row is not None and row[0] is not None:
        got = conn.execute(
            f"SELECT max(version) FROM {quoted}.aptools_schema"  # noqa: S608
        ).fetchone()
        found = int(got[0]) if got is not None and got[0] is not None else 0
    if found > VERSION:
        raise SchemaTooNew(
            f"the PostgreSQL schema {schema!r} is at version {found}, but this "
            f"aptools knows versions up to {VERSION}: upgrade aptools on this "
            "host (or use another schema)"
        )
    return found


def migrate(conn: psycopg.Connection[Any], schema: str) -> int:
    """Bring ``schema`` to :data:`VERSION`; return the version found.

    Raises :class:`SchemaTooNew` if the database is newer than this code.
    """
    quoted = f'"{schema}"'
    with conn.transaction():
        # Migrations may take longer than a request's statement; waiting for
        # another process's migration is bounded all the same.
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("SET LOCAL lock_timeout = '120s'")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("schema", schema),))
        found = found_version(conn, schema)
        if found == 0:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {quoted}.aptools_schema ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        for version in range(found, VERSION):
            for step in MIGRATIONS[version]:
                conn.execute(step.format(s=quoted).encode())
            conn.execute(
                f"INSERT INTO {quoted}.aptools_schema (version) VALUES (%s)",  # noqa: S608
                (version + 1,),
            )
    return found
