"""The PostgreSQL store against a real server: the store contract, atomicity
across hosts (two store objects, two processes), schema management, shared
introspections, faults; and the framework on it, on both faces."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from aptools import Action, Stored, StoreUnavailable
from aptools.models import isoformat
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import MakeClient
from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    URL,
    Relay,
    adapted,
    eventually,
    execute,
    pg_url_fixture,
    require_server,
    schema_fixture,
    through,
    with_params,
)

psycopg = pytest.importorskip("psycopg")

from aptools.store.postgresql import (  # noqa: E402
    VERSION,
    PostgreSQLStore,
    SchemaTooNew,
    open_postgresql,
    redact,
)
from aptools.store.postgresql._interface import RequestKey  # noqa: E402
from aptools.store.postgresql.statements import Statements  # noqa: E402

NOW = 1_900_000_000.0
ALICE = "urn:globus:auth:identity:00000000-0000-0000-0000-00000000000a"
BOB = "urn:globus:auth:identity:00000000-0000-0000-0000-00000000000b"
GROUP = "urn:globus:groups:id:00000000-0000-0000-0000-0000000000aa"


@pytest.fixture
def root(pg_url: str) -> Iterator[PostgreSQLStore]:
    made = PostgreSQLStore(pg_url)
    yield made
    made.close()


@pytest.fixture
def store(root: PostgreSQLStore) -> Iterator[PostgreSQLStore]:
    view = root.for_provider("scope-a /a")
    yield view
    view.close()


def key(request_id: str, fingerprint: str = "fp", creator: str = ALICE) -> RequestKey:
    return RequestKey(creator, request_id, fingerprint)


def action(action_id: str, status: str = "ACTIVE", **kw: object) -> Action:
    fields: dict[str, object] = {
        "action_id": action_id,
        "status": status,
        "creator_id": ALICE,
        "request_id": "req-" + action_id,
        "start_time": isoformat(NOW),
    }
    fields.update(kw)
    return Action(**fields)  # type: ignore[arg-type]


def put(store: PostgreSQLStore, act: Action, expires_at: float | None = None) -> None:
    got = store.reserve(
        key(act.request_id, creator=act.creator_id), act.action_id, NOW, 60
    )
    assert got.outcome == "new"
    store.finish(Stored.of(act), act, expires_at)


# -- the contract --


def test_reserve_outcomes(store: PostgreSQLStore) -> None:
    assert store.reserve(key("r", "fp1"), "a1", NOW, 60).outcome == "new"
    assert store.reserve(key("r", "fp1"), "a2", NOW, 60).outcome == "pending"
    assert store.reserve(key("r", "fp2"), "a2", NOW, 60).outcome == "conflict"
    assert store.get("a1", NOW) is None  # pending actions are invisible
    done = action("a1", request_id="r")
    store.finish(Stored.of(done), done, None)
    found = store.reserve(key("r", "fp1"), "a3", NOW, 60)
    assert found.outcome == "existing" and found.stored is not None
    assert found.stored.action().action_id == "a1"
    assert store.reserve(key("r", "fp2"), "a3", NOW, 60).outcome == "conflict"
    assert store.reserve(key("r", "fp2", BOB), "b1", NOW, 60).outcome == "new"


def test_stale_reservation_is_handed_on(store: PostgreSQLStore) -> None:
    assert store.reserve(key("r"), "a1", NOW, 60).outcome == "new"
    assert store.reserve(key("r"), "a2", NOW + 59, 60).outcome == "pending"
    assert store.reserve(key("r"), "a2", NOW + 61, 60).outcome == "new"
    late = action("a1", request_id="r")
    store.finish(Stored.of(late), late, None)  # the old holder lost the key
    assert store.get("a1", NOW + 61) is None
    done = action("a2", request_id="r")
    store.finish(Stored.of(done), done, None)
    assert store.get("a2", NOW + 61) is not None


def test_abandon_frees_the_key(store: PostgreSQLStore) -> None:
    assert store.reserve(key("r"), "a1", NOW, 60).outcome == "new"
    store.abandon("a1")
    assert store.reserve(key("r"), "a2", NOW, 60).outcome == "new"


def test_copies_are_private(store: PostgreSQLStore) -> None:
    put(store, action("a1", details={"n": 1}))
    got = store.get("a1", NOW)
    assert got is not None
    copy = got.action()
    copy.details["n"] = 2
    again = store.get("a1", NOW)
    assert again is not None and again.action().details == {"n": 1}
    assert orjson.loads(again.public)["details"] == {"n": 1}


def test_terminal_actions_never_change(store: PostgreSQLStore) -> None:
    put(store, action("a1"))
    progress = store.update("a1", Stored.of(action("a1", details={"p": 1})), None, NOW)
    assert progress is not None and progress.action().details == {"p": 1}
    finished = Stored.of(action("a1", "SUCCEEDED", details={"r": 1}))
    done = store.update("a1", finished, NOW + 100, NOW)
    assert done is not None and done.status == "SUCCEEDED"
    back = store.update("a1", Stored.of(action("a1", "ACTIVE")), None, NOW)
    assert back is not None and back.status == "SUCCEEDED"
    assert back.action().details == {"r": 1}
    assert store.get("a1", NOW + 99) is not None  # its expiry kept too
    assert store.get("a1", NOW + 100) is None
    assert store.update("missing", Stored.of(action("missing")), None, NOW) is None


def test_concurrent_updates_never_change_a_terminal_action(
    root: PostgreSQLStore,
) -> None:
    hosts = [root.for_provider("p"), root.for_provider("p")]
    put(hosts[0], action("a1"))
    finals = ["SUCCEEDED", "FAILED"] * 10

    def write(n: int) -> str | None:
        got = hosts[n % 2].update(
            "a1", Stored.of(action("a1", finals[n], details={"by": n})), None, NOW
        )
        return None if got is None else got.action().details["by"]

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(write, range(20)))
    stored = hosts[1].get("a1", NOW)
    assert stored is not None
    winner = stored.action().details["by"]
    assert answers == [winner] * 20  # everybody was told the one final state


def test_expiry_and_purge_in_batches(store: PostgreSQLStore) -> None:
    put(store, action("a1", "SUCCEEDED"), expires_at=NOW + 10)
    put(store, action("a2"))
    assert store.get("a1", NOW + 9) is not None
    assert store.get("a1", NOW + 10) is None
    # An expired action's key is free at once, before any purge.
    assert store.reserve(key("req-a1", "other"), "a3", NOW + 11, 60).outcome == "new"
    store.abandon("a3")
    for n in range(2500):
        put(store, action(f"x{n}", "FAILED"), expires_at=NOW + 5)
    assert store.purge(NOW + 11) == 2500
    assert store.get("a2", NOW + 11) is not None


def test_purge_drops_keys_abandoned_long_ago(
    store: PostgreSQLStore, schema: str
) -> None:
    assert store.reserve(key("r1"), "a1", NOW, 60).outcome == "new"
    assert store.reserve(key("r2"), "a2", NOW + 86_000, 60).outcome == "new"
    assert store.purge(NOW + 86_401) == 0  # no action went: they were pending
    held = execute(f'SELECT action_id FROM "{schema}".aptools_actions')
    assert held == [("a2",)]


def test_delete_removes_action_and_key(store: PostgreSQLStore) -> None:
    put(store, action("a1", "FAILED"))
    store.delete("a1")
    assert store.get("a1", NOW) is None
    assert store.reserve(key("req-a1"), "a2", NOW, 60).outcome == "new"


def test_list_by_principal_role_and_status(store: PostgreSQLStore) -> None:
    put(store, action("a1"))
    put(store, action("a2", "SUCCEEDED"))
    put(store, action("b1", creator_id=BOB, monitor_by=[ALICE]))
    put(store, action("b2", creator_id=BOB, manage_by=[GROUP]))
    put(store, action("b3", creator_id=BOB))
    store.reserve(key("pending"), "a9", NOW, 60)

    def ids(roles: dict[str, set[str]], statuses: set[str]) -> list[str]:
        return [a.action_id for a in store.list(roles, statuses, NOW)]

    assert ids({"creator_id": {ALICE}}, {"ACTIVE"}) == ["a1"]
    assert ids({"creator_id": {ALICE}}, {"ACTIVE", "SUCCEEDED"}) == ["a1", "a2"]
    assert ids({"monitor_by": {ALICE}}, {"ACTIVE"}) == ["b1"]
    assert ids({"manage_by": {ALICE, GROUP}}, {"ACTIVE"}) == ["b2"]
    assert ids({"monitor_by": {GROUP}}, {"ACTIVE"}) == []  # a role is its own
    assert ids({"creator_id": {ALICE}, "monitor_by": {ALICE}}, {"ACTIVE"}) == [
        "a1",
        "b1",
    ]
    assert ids({"creator_id": {BOB}}, set()) == []
    assert ids({}, {"ACTIVE"}) == []


def test_providers_never_see_each_other(root: PostgreSQLStore) -> None:
    a, b = root.for_provider("scope-a /a"), root.for_provider("scope-b /b")
    put(a, action("a1", request_id="r"))
    assert b.get("a1", NOW) is None
    assert b.list({"creator_id": {ALICE}}, {"ACTIVE"}, NOW) == []
    assert b.update("a1", Stored.of(action("a1", "FAILED")), None, NOW) is None
    b.delete("a1")
    assert a.get("a1", NOW) is not None
    # The same caller and request_id are a new request to another provider.
    assert b.reserve(key("r"), "b1", NOW, 60).outcome == "new"
    a.introspections().put(b"k", NOW + 60, {"sub": "x"})
    assert b.introspections().get(b"k", NOW) is None
    assert a.introspections().get(b"k", NOW) == (NOW + 60, {"sub": "x"})


def test_explain_lists_and_purge_use_indexes(
    store: PostgreSQLStore, schema: str
) -> None:
    # Realistic statistics rather than enable_seqscan=off: 20 000 actions of
    # 2 000 callers, analysed; the planner must still pick the indexes.
    execute(
        f'INSERT INTO "{schema}".aptools_actions (namespace, action_id, creator_id,'
        " request_id, fingerprint, reserved_at, pending, status, expires_at, shared,"
        " public, doc)"
        " SELECT 'scope-a /a', 'x' || n, 'urn:c' || (n % 2000), 'r' || n, 'fp', n,"
        " false, CASE WHEN n % 3 = 0 THEN 'SUCCEEDED' ELSE 'ACTIVE' END,"
        " CASE WHEN n % 3 = 0 THEN n + 2e9 - 20 END,"
        " ARRAY['monitor_by urn:m' || (n % 1000)], '{}'::bytea, '{}'::bytea"
        " FROM generate_series(1, 20000) AS n"
    )
    execute(f'ANALYZE "{schema}".aptools_actions')
    sql = Statements.of(schema)
    params: dict[str, Any] = {
        "namespace": "scope-a /a",
        "now": NOW,
        "statuses": ["ACTIVE"],
        "creators": ["urn:c7"],
        "shared": ["monitor_by urn:m7"],
        "batch": 1000,
    }
    params["abandoned"] = NOW
    for statement in (
        sql.list_by_creator,
        sql.list_by_shared,
        sql.list_by_both,
        sql.purge,
        sql.purge_abandoned,
    ):
        with psycopg.connect(URL) as conn:
            plan = "\n".join(
                row[0]
                for row in conn.execute(b"EXPLAIN " + statement, params).fetchall()
            )
        assert "Seq Scan" not in plan, plan
        assert "Index" in plan, plan


# -- across hosts --


def _framework_run(host: PostgreSQLStore, runs: list[str], action_id: str) -> str:
    """What run does with a store: poll reserve while pending."""
    while True:
        got = host.reserve(key("burst"), action_id, NOW, 60)
        if got.outcome == "new":
            runs.append(action_id)
            done = action(action_id, request_id="burst")
            host.finish(Stored.of(done), done, None)
            return action_id
        if got.stored is not None:
            return got.stored.action_id
        assert got.outcome == "pending"


def test_fifty_identical_runs_on_two_hosts_run_once(
    root: PostgreSQLStore, pg_url: str
) -> None:
    hosts = [root.for_provider("p"), PostgreSQLStore(pg_url).for_provider("p")]
    runs: list[str] = []
    with ThreadPoolExecutor(50) as pool:
        answers = list(
            pool.map(lambda n: _framework_run(hosts[n % 2], runs, f"a{n}"), range(50))
        )
    assert len(runs) == 1
    assert answers == runs * 50
    hosts[1].close()


def _process_runs(url: str, first: int, out: Any) -> None:
    host = PostgreSQLStore(url).for_provider("p")
    runs: list[str] = []
    with ThreadPoolExecutor(25) as pool:
        answers = list(
            pool.map(
                lambda n: _framework_run(host, runs, f"a{n}"), range(first, first + 25)
            )
        )
    out.put((runs, answers))


def test_fifty_identical_runs_in_two_processes_run_once(pg_url: str) -> None:
    PostgreSQLStore(pg_url).close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_process_runs, args=(pg_url, n * 25, out)) for n in (0, 1)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    runs = [r for got, _ in results for r in got]
    assert len(runs) == 1
    assert [a for _, answers in results for a in answers] == runs * 50


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
    assert execute(f'SELECT version FROM "{schema}".aptools_schema') == [(VERSION,)]


def test_a_newer_schema_is_a_clear_start_up_error(pg_url: str, schema: str) -> None:
    PostgreSQLStore(pg_url).close()
    execute(f'INSERT INTO "{schema}".aptools_schema (version) VALUES ({VERSION + 1})')
    with pytest.raises(SchemaTooNew, match=f"version {VERSION + 1}"):
        PostgreSQLStore(pg_url)


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
    provider, client = make(store=adapted(PostgreSQLStore(url)))
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
    _, client = make(
        store=adapted(store), enumerate=lambda query, caller: query.actions
    )
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
