"""The schema step that keeps a job's trace context: a SQLite file of
version 3 and a PostgreSQL schema at version 3 gain the ``traceparent``
column, their queued jobs kept and claimable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from aptools import SQLiteStore
from aptools.store.postgresql import PostgreSQLStore
from aptools.store.postgresql.schema import MIGRATIONS, VERSION, migrate
from aptools.store.sqlite import schema as sqlite_schema
from aptools.testing.queue_contract import WHO, JobQueueContract

from .pg import (  # noqa: F401 - fixtures
    URL,
    pg_url_fixture,
    schema_fixture,
    with_params,
)


def test_a_sqlite_file_of_version_3_gains_the_trace_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path).for_provider("p")
    queue = store.jobs()
    assert queue is not None
    queue.enqueue("a1", None, WHO)
    JobQueueContract.put(store, "a1")
    store.close()
    with sqlite3.connect(path) as db:  # back to version 3's shape
        db.execute("ALTER TABLE aptools_jobs DROP COLUMN traceparent")
        db.execute("PRAGMA user_version = 3")
    reopened = SQLiteStore(path).for_provider("p")
    try:
        queue = reopened.jobs()
        assert queue is not None
        queue.keep_trace("a1", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")
        origin = queue.origin("a1")
        assert origin is not None and origin[0] is not None
        assert [c.action_id for c in queue.claim("w", 10, 5)] == ["a1"]
    finally:
        reopened.close()
    with sqlite3.connect(path) as db:
        found = db.execute("PRAGMA user_version").fetchone()[0]
    assert found == sqlite_schema.VERSION == 5


def test_a_postgresql_schema_at_version_3_gains_the_trace_column(schema: str) -> None:
    with psycopg.connect(URL, autocommit=True) as conn:
        quoted = f'"{schema}"'
        conn.execute(f"CREATE SCHEMA {quoted}".encode())
        conn.execute(
            f"CREATE TABLE {quoted}.aptools_schema (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())".encode()
        )
        for version in range(3):
            for step in MIGRATIONS[version]:
                conn.execute(step.format(s=quoted).encode())
            conn.execute(
                f"INSERT INTO {quoted}.aptools_schema VALUES (%s)".encode(),
                (version + 1,),
            )
        assert migrate(conn, schema) == 3
        assert VERSION == 5
    store = PostgreSQLStore(with_params(URL, schema=schema)).for_provider("p")
    try:
        queue = store.jobs()
        assert queue is not None
        queue.enqueue("a1", None, WHO)
        JobQueueContract.put(store, "a1")
        queue.keep_trace("a1", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")
        origin = queue.origin("a1")
        assert (
            origin is not None
            and origin[0] == "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        )
        assert [c.action_id for c in queue.claim("w", 10, 5)] == ["a1"]
    finally:
        store.close()
