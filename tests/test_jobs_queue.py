"""The job-queue contract (aptools.testing.queue_contract), on every store
that holds jobs; and, on PostgreSQL, leases on the database's clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from aptools import MemoryStore, SQLiteStore, Store
from aptools.testing.queue_contract import JobQueueContract

from .pg import URL, pg_url_fixture, schema_fixture  # noqa: F401 - fixtures


class TestMemoryQueue(JobQueueContract):
    @pytest.fixture
    def make_store(self) -> Iterator[Store]:
        store = MemoryStore()
        yield store
        store.close()


class TestSQLiteQueue(JobQueueContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Iterator[Store]:
        store = SQLiteStore(tmp_path / "jobs.db")
        yield store
        store.close()


class TestPostgreSQLQueue(JobQueueContract):
    @pytest.fixture
    def make_store(self, pg_url: str) -> Iterator[Store]:
        from aptools.store.postgresql import PostgreSQLStore

        store = PostgreSQLStore(pg_url)
        yield store
        store.close()


def test_postgresql_leases_run_on_the_databases_clock(pg_url: str, schema: str) -> None:
    from aptools.store.postgresql import PostgreSQLStore

    root = PostgreSQLStore(pg_url)
    store = root.for_provider("p")
    queue = store.jobs()
    assert queue is not None
    for action_id in ("held", "free"):
        queue.enqueue(action_id, None, {"identity_id": "x"})
        JobQueueContract.put(store, action_id)
    assert {c.action_id for c in queue.claim("host-a", 30, 5)} == {"held", "free"}
    with psycopg.connect(URL, autocommit=True) as db:
        # The lease ends 30 s after the database's now, whatever this host's
        # clock says: no host time goes into a claim.
        left = db.execute(
            "SELECT lease_until - extract(epoch from now())"
            f' FROM "{schema}".aptools_jobs'
            " WHERE action_id = 'held'"
        ).fetchone()
        assert left is not None and 29 < left[0] <= 30
        # As the database's clock sees them: one lease still 60 s long, one
        # run out a second ago. Take-overs follow the database's clock only,
        # so a host whose own clock is a minute fast takes over neither more
        # nor less than this.
        db.execute(
            f'UPDATE "{schema}".aptools_jobs SET lease_until = CASE action_id'
            " WHEN 'held' THEN extract(epoch from now()) + 60"
            " ELSE extract(epoch from now()) - 1 END"
        )
    assert [c.action_id for c in queue.claim("host-b", 30, 5)] == ["free"]
    assert abs(queue.now() - time.time()) < 5  # the same machine here
    root.close()
