"""The schema step that keeps the callers' run buckets
(``max_runs_per_caller``): a SQLite file of version 4 and a PostgreSQL
schema at version 4 gain ``aptools_run_rates``, their actions kept."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg

from aptools import SQLiteStore
from aptools.store.postgresql import PostgreSQLStore
from aptools.store.postgresql.schema import MIGRATIONS, VERSION, migrate
from aptools.store.sqlite import schema as sqlite_schema
from aptools.testing.queue_contract import JobQueueContract

from .pg import (  # noqa: F401 - fixtures
    URL,
    pg_url_fixture,
    schema_fixture,
    with_params,
)


def test_a_sqlite_file_of_version_4_gains_the_run_buckets(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path).for_provider("p")
    JobQueueContract.put(store, "a1")
    store.close()
    with sqlite3.connect(path) as db:  # back to version 4's shape
        db.execute("DROP TABLE aptools_run_rates")
        db.execute("PRAGMA user_version = 4")
    reopened = SQLiteStore(path).for_provider("p")
    try:
        assert reopened.get("a1", time.time()) is not None
        assert reopened.count_run("alice", 1, 60.0) == 0.0
        assert 59.0 < reopened.count_run("alice", 1, 60.0) <= 60.0
    finally:
        reopened.close()
    with sqlite3.connect(path) as db:
        found = db.execute("PRAGMA user_version").fetchone()[0]
    assert found == sqlite_schema.VERSION == 5


def test_a_postgresql_schema_at_version_4_gains_the_run_buckets(schema: str) -> None:
    with psycopg.connect(URL, autocommit=True) as conn:
        quoted = f'"{schema}"'
        conn.execute(f"CREATE SCHEMA {quoted}".encode())
        conn.execute(
            f"CREATE TABLE {quoted}.aptools_schema (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())".encode()
        )
        for version in range(4):
            for step in MIGRATIONS[version]:
                conn.execute(step.format(s=quoted).encode())
            conn.execute(
                f"INSERT INTO {quoted}.aptools_schema VALUES (%s)".encode(),
                (version + 1,),
            )
        assert migrate(conn, schema) == 4
        assert VERSION == 5
    store = PostgreSQLStore(with_params(URL, schema=schema)).for_provider("p")
    try:
        assert store.count_run("alice", 1, 60.0) == 0.0
        assert 59.0 < store.count_run("alice", 1, 60.0) <= 60.0
        assert store.count_run("bob", 1, 60.0) == 0.0
    finally:
        store.close()
