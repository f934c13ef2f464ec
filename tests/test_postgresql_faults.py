"""The PostgreSQL store against a real server: schema management, URLs,
shared introspections, faults; and the framework on it, on both faces."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aptools import Stored, StoreUnavailable
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import MakeClient
from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    URL,
    Relay,
    eventually,
    execute,
    pg_url_fixture,
    require_server,
    schema_fixture,
    through,
    with_params,
)

psycopg = pytest.importorskip("psycopg")

from aptools.store import redact  # noqa: E402
from aptools.store.postgresql import (  # noqa: E402
    VERSION,
    PostgreSQLStore,
    SchemaTooNew,
    open_postgresql,
)

from .pgstore import (  # noqa: E402, F401 - the fixtures root and store
    NOW,
    action,
    put,
    root_fixture,
    store_fixture,
)

# -- schema management --


def _start(url: str) -> None:
    PostgreSQLStore(url).close()


def test_ten_processes_starting_together_create_the_schema_once(
    pg_url: str, schema: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_start, args=(pg_url,)) for _ in range(10)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * 10
    # Each migration step applied once, in order.
    assert execute(
        f'SELECT version FROM "{schema}".aptools_schema ORDER BY version'
    ) == [(v,) for v in range(1, VERSION + 1)]


def test_a_newer_schema_is_a_clear_start_up_error(pg_url: str, schema: str) -> None:
    PostgreSQLStore(pg_url).close()
    execute(f'INSERT INTO "{schema}".aptools_schema (version) VALUES ({VERSION + 1})')
    with pytest.raises(SchemaTooNew, match=f"version {VERSION + 1}"):
        PostgreSQLStore(pg_url)


def _child_reads(store: PostgreSQLStore, out: Any) -> None:
    got = store.get("a1", NOW)
    put(store, action("c1"))
    out.put(None if got is None else got.action_id)


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_worker_opens_its_own_connections(store: PostgreSQLStore) -> None:
    # As gunicorn forks workers from a parent that used the store already.
    put(store, action("a1"))
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_reads, args=(store, out))
    child.start()
    assert out.get(timeout=30) == "a1"
    child.join(timeout=30)
    assert child.exitcode == 0
    # The parent's connections were neither shared nor ended by the child.
    assert store.get("c1", NOW) is not None
    assert store.get("a1", NOW) is not None


# -- URLs --


def test_url_settings() -> None:
    from aptools.store.postgresql.settings import Settings

    got = Settings.parse(
        "postgres://u:pw@db:6543/prod?schema=echo&pool_min=2&pool_max=20"
        "&pool_timeout=1.5&connect_timeout=2&statement_timeout=9&sslmode=require"
    )
    assert (got.schema, got.pool_min, got.pool_max) == ("echo", 2, 20)
    assert (got.pool_timeout, got.connect_timeout, got.statement_timeout) == (1.5, 2, 9)
    assert got.conninfo == "postgres://u:pw@db:6543/prod?sslmode=require"
    plain = Settings.parse("postgresql://db/prod")
    assert (plain.schema, plain.pool_max, plain.statement_timeout) == ("public", 10, 5)
    assert redact("postgresql://u:pw@db/prod") == "postgresql://u:***@db/prod"


def test_url_settings_and_bad_urls_never_show_the_password() -> None:
    for bad in (
        "postgresql://u:s3cret@h/db?pool_max=zero",
        "postgresql://u:s3cret@h/db?pool_min=5&pool_max=2",
        "postgresql://u:s3cret@h/db?statement_timeout=-1",
        "postgresql://u:s3cret@h/db?schema=Bad;Name",
        "postgresql://u:s3cret@h:99999/db",
        "mysql://u:s3cret@h/db",
        "postgresql://u:s3cret%zz@h/db",  # a bad percent-escape: libpq's error
        "postgresql://u:s3cret@h/db?bogusopt=1",  # a parameter libpq lacks
        "postgresql:",
    ):
        with pytest.raises(ValueError) as caught:
            open_postgresql(bad)
        assert "s3cret" not in str(caught.value)


def test_unreachable_at_start_up_is_a_clear_error_without_password() -> None:
    require_server()
    with pytest.raises(ConnectionError) as caught:
        PostgreSQLStore(
            "postgresql://postgres:s3cret@127.0.0.1:1/test?connect_timeout=1"
        )
    assert "cannot connect" in str(caught.value)
    assert "s3cret" not in str(caught.value)


# -- shared introspections --


def test_introspection_hold_is_single_flight_across_hosts(
    root: PostgreSQLStore, pg_url: str, schema: str
) -> None:
    one = root.for_provider("p").introspections()
    other_host = PostgreSQLStore(pg_url)
    other = other_host.for_provider("p").introspections()
    order: list[str] = []
    held = threading.Event()
    release = threading.Event()

    def first() -> None:
        with one.hold(b"token-hash", wait=10):
            order.append("first in")
            held.set()
            release.wait(10)
            one.put(b"token-hash", NOW + 60, {"sub": "s"})
            order.append("first out")

    def second() -> None:
        held.wait(10)
        with other.hold(b"token-hash", wait=10):
            order.append("second in")
            assert other.get(b"token-hash", NOW) == (NOW + 60, {"sub": "s"})

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    held.wait(10)
    # Release the first holder only once the second waits for its lock.
    while not execute(
        "SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND NOT l.granted"
        " AND a.application_name = %s",
        schema,
    ):
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(20)
    assert order == ["first in", "first out", "second in"]
    other_host.close()


def test_introspections_fail_open(relay: Relay, schema: str) -> None:
    store = PostgreSQLStore(through(relay, schema, pool_timeout=1))
    shared = store.for_provider("p").introspections()
    shared.put(b"k", NOW + 60, {"sub": "s"})
    relay.cut()
    with shared.hold(b"k", wait=1):
        assert shared.get(b"k", NOW) is None
        shared.put(b"k2", NOW + 60, {"sub": "s"})
    store.close()


# -- faults --


def test_ended_connections_are_replaced_unnoticed(
    store: PostgreSQLStore, schema: str
) -> None:
    put(store, action("a1"))
    assert store.get("a1", NOW) is not None
    ended = execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = %s",
        schema,
    )
    assert ended and all(ok for (ok,) in ended)
    assert store.get("a1", NOW) is not None


def test_a_slow_statement_is_store_unavailable(pg_url: str, schema: str) -> None:
    store = PostgreSQLStore(with_params(pg_url, statement_timeout=0.5)).for_provider(
        "p"
    )
    put(store, action("a1"))
    with psycopg.connect(URL) as locker:
        locker.execute(f'SELECT 1 FROM "{schema}".aptools_actions FOR UPDATE'.encode())
        with pytest.raises(StoreUnavailable) as caught:
            store.update("a1", Stored.of(action("a1", "FAILED")), None, NOW)
    assert caught.value.headers is not None and "Retry-After" in caught.value.headers
    assert store.get("a1", NOW) is not None  # the pool goes on
    store.close()


def test_a_full_pool_is_store_unavailable(pg_url: str) -> None:
    store = PostgreSQLStore(with_params(pg_url, pool_max=1, pool_timeout=0.5))
    view = store.for_provider("p")
    # The hold takes the one connection.
    with view.introspections().hold(b"k", wait=1), pytest.raises(StoreUnavailable):
        view.get("a1", NOW)
    assert view.get("a1", NOW) is None
    store.close()


# -- the framework on PostgreSQL, both faces --


@pytest.fixture
def relay() -> Iterator[Relay]:
    made = Relay()
    yield made
    made.cut()


def test_outage_answers_503_and_recovers_losing_nothing(
    make: MakeClient, alice: FakeIdentity, relay: Relay, schema: str
) -> None:
    require_server()
    url = through(relay, schema, pool_timeout=1, connect_timeout=1, statement_timeout=2)
    provider, client = make(store=PostgreSQLStore(url))
    accepted = [client.run(alice, {"input_string": "x"}, f"r{n}") for n in range(5)]
    assert [r.status_code for r in accepted] == [202] * 5
    relay.cut()
    down = [
        client.run(alice, {"input_string": "x"}, "during"),
        client.call("GET", f"/{accepted[0].json['action_id']}/status", alice),
    ]
    for result in down:
        assert result.status_code == 503, result.text
        assert result.json["code"] == "StoreUnavailable"
        assert result.headers["Retry-After"]
    relay.mend()
    for result in accepted:
        path = f"/{result.json['action_id']}/status"
        back = eventually(
            lambda p=path: client.call("GET", p, alice),
            lambda r: r.status_code != 503,
        )
        assert back.status_code == 200 and back.json["status"] == "SUCCEEDED"
    assert client.run(alice, {"input_string": "x"}, "after").status_code == 202
    provider.store.close()


def test_lifecycle_through_the_framework(
    make: MakeClient,
    alice: FakeIdentity,
    bob: FakeIdentity,
    pg_url: str,
    schema: str,
    auth: FakeGlobusAuth,
) -> None:
    store = PostgreSQLStore(pg_url)
    _, client = make(store=store, enumerate=lambda query, caller: query.actions)
    token = auth.token(alice)
    first = client.run(token, {"input_string": "hi"}, "once")
    assert first.status_code == 202
    action_id = first.json["action_id"]
    assert (
        client.run(token, {"input_string": "hi"}, "once").json["action_id"] == action_id
    )
    assert client.run(token, {"input_string": "other"}, "once").status_code == 409
    assert client.call("GET", f"/{action_id}/status", bob).status_code == 404
    listed = client.call("GET", "/actions", alice, params={"status": "succeeded"})
    assert [a["action_id"] for a in listed.json] == [action_id]
    assert client.call("POST", f"/{action_id}/release", alice).status_code == 200
    assert client.call("GET", f"/{action_id}/status", alice).status_code == 404
    # Shared introspections hold hashes of tokens, never tokens.
    rows = execute(f'SELECT key, record FROM "{schema}".aptools_introspections')
    assert rows
    for key_hash, record in rows:
        assert token.encode() not in bytes(key_hash) + bytes(record)
    store.close()
