"""The PostgreSQL job queue's own promises: its table comes with the store's
schema (migrated, versioned, in the URL's schema), it keeps to its namespace
and schema, outages are a 503 like any store call, and a forked process
never uses its parent's connections."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest

from aptools import Action, RequestKey, Stored, StoreUnavailable
from aptools.store.jobqueue import Fence
from aptools.store.postgresql import VERSION, PostgreSQLStore
from aptools.store.postgresql.schema import MIGRATIONS, migrate

from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    URL,
    Relay,
    execute,
    pg_url_fixture,
    schema_fixture,
    through,
    with_params,
)

NOW = 1_800_000_000.0
WHO = {"identity_id": "x", "identities": ["urn:globus:auth:identity:x"]}


def put(store: PostgreSQLStore, action_id: str) -> None:
    action = Action(
        action_id=action_id,
        status="ACTIVE",
        creator_id="urn:globus:auth:identity:x",
        request_id=action_id,
        start_time="2027-01-15T08:00:00+00:00",
    )
    held = store.reserve(
        RequestKey(action.creator_id, action_id, "f"), action_id, NOW, 60
    )
    assert held.outcome == "new"
    store.create(Stored.of(action), action, None)


@pytest.fixture
def root(pg_url: str) -> Iterator[PostgreSQLStore]:
    made = PostgreSQLStore(pg_url)
    yield made
    made.close()


def test_the_jobs_table_is_made_by_the_schema_migration(
    root: PostgreSQLStore, schema: str
) -> None:
    assert VERSION == len(MIGRATIONS) >= 2
    assert execute(f'SELECT max(version) FROM "{schema}".aptools_schema') == [
        (VERSION,)
    ]
    tables = execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
        " ORDER BY table_name",
        schema,
    )
    assert ("aptools_jobs",) in tables
    # Made once, by the migration: building a queue creates nothing.
    execute(f'DROP TABLE "{schema}".aptools_jobs')
    with pytest.raises(Exception, match="aptools_jobs"):
        root.for_provider("p").jobs().due()


def test_a_database_at_version_1_gains_the_jobs_table(schema: str) -> None:
    import psycopg

    # A store of the version before jobs: its steps only.
    with psycopg.connect(URL, autocommit=True) as conn:
        quoted = f'"{schema}"'
        conn.execute(f"CREATE SCHEMA {quoted}".encode())
        conn.execute(
            f"CREATE TABLE {quoted}.aptools_schema (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())".encode()
        )
        for step in MIGRATIONS[0]:
            conn.execute(step.format(s=quoted).encode())
        conn.execute(f"INSERT INTO {quoted}.aptools_schema VALUES (1)".encode())
        assert migrate(conn, schema) == 1
    assert execute(f"SELECT to_regclass('\"{schema}\".aptools_jobs')") != [(None,)]
    store = PostgreSQLStore(with_params(URL, schema=schema)).for_provider("p")
    try:
        put(store, "a1")
        queue = store.jobs()
        queue.enqueue("a1", None, WHO)
        assert [c.action_id for c in queue.claim("w", 10, 5)] == ["a1"]
    finally:
        store.close()


def test_namespaces_and_schemas_keep_their_jobs_apart(
    root: PostgreSQLStore, schema: str
) -> None:
    a, b = root.for_provider("a"), root.for_provider("b")
    other_schema = schema + "_other"
    other = PostgreSQLStore(with_params(URL, schema=other_schema)).for_provider("a")
    try:
        for store in (a, b, other):
            put(store, "same-id" if store is not b else "b-id")
            store.jobs().enqueue("same-id" if store is not b else "b-id", None, WHO)
        assert [c.action_id for c in a.jobs().claim("w", 0.0, 9)] == ["same-id"]
        assert [c.action_id for c in b.jobs().claim("w", 10, 9)] == ["b-id"]
        # The same namespace in another schema: another queue altogether.
        assert [c.action_id for c in other.jobs().claim("w", 10, 9)] == ["same-id"]
        assert a.jobs().claim("w", 10, 9)[0].attempts == 2
    finally:
        a.close()
        b.close()
        other.close()
        execute(f'DROP SCHEMA IF EXISTS "{other_schema}" CASCADE')


def test_an_unreachable_database_is_store_unavailable(schema: str) -> None:
    relay = Relay()
    try:
        store = PostgreSQLStore(
            through(relay, schema, pool_timeout=1, connect_timeout=1)
        ).for_provider("p")
        queue = store.jobs()
        put(store, "a1")
        queue.enqueue("a1", None, WHO)
        relay.cut()
        with pytest.raises(StoreUnavailable):
            queue.claim("w", 10, 5)
        with pytest.raises(StoreUnavailable):
            queue.heartbeat([Fence("a1", "w", 1)], 10)
        relay.mend()
        # The pool recovers by itself: the job is still there to claim.
        got: list[str] = []
        for _ in range(50):
            try:
                got = [c.action_id for c in queue.claim("w", 10, 5)]
                break
            except StoreUnavailable:
                continue
        assert got == ["a1"]
        store.close()
    finally:
        relay.cut()


def _claim_in_child(url: str, out: multiprocessing.Queue[object]) -> None:
    # Nothing is opened here: the queue comes from the parent, over fork.
    try:
        claimed = _queue.claim("child", 10, 5)
        out.put([c.action_id for c in claimed])
    except BaseException as exc:  # reported to the parent
        out.put(repr(exc))


_queue: Any = None


def test_a_forked_process_uses_connections_of_its_own(
    root: PostgreSQLStore, schema: str
) -> None:
    global _queue
    store = root.for_provider("p")
    queue = store.jobs()
    put(store, "a1")
    queue.enqueue("a1", None, WHO)
    # The parent's pool is open, with a connection idle in it.
    assert queue.claim("parent", 0.0, 5) != []
    _queue = queue
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[object] = ctx.Queue()
    child = ctx.Process(target=_claim_in_child, args=(URL, out))
    child.start()
    got = out.get(timeout=30)
    child.join(30)
    assert got == ["a1"]
    # The parent's connections still work: the child never used them.
    [beat] = queue.heartbeat([Fence("a1", "child", 2)], 0.0)
    assert beat.action_id == "a1"
    assert [c.action_id for c in queue.claim("parent", 10, 5)] == ["a1"]
    store.close()
