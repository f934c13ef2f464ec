"""The PostgreSQL store against a real server: the store contract, and its
atomicity across hosts (two store objects, two processes)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from aptools import Stored

from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    URL,
    execute,
    pg_url_fixture,
    schema_fixture,
)

psycopg = pytest.importorskip("psycopg")

from aptools.store.postgresql import PostgreSQLStore  # noqa: E402
from aptools.store.postgresql.statements import Statements  # noqa: E402

from .pgstore import (  # noqa: E402, F401 - the fixtures root and store
    ALICE,
    BOB,
    GROUP,
    NOW,
    action,
    key,
    put,
    root_fixture,
    store_fixture,
)

# -- the contract --


def test_reserve_outcomes(store: PostgreSQLStore) -> None:
    assert store.reserve(key("r", "fp1"), "a1", NOW, 60).outcome == "new"
    assert store.reserve(key("r", "fp1"), "a2", NOW, 60).outcome == "pending"
    assert store.reserve(key("r", "fp2"), "a2", NOW, 60).outcome == "conflict"
    assert store.get("a1", NOW) is None  # pending actions are invisible
    done = action("a1", request_id="r")
    store.create(Stored.of(done), done, None)
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
    store.create(Stored.of(late), late, None)  # the old holder lost the key
    assert store.get("a1", NOW + 61) is None
    done = action("a2", request_id="r")
    store.create(Stored.of(done), done, None)
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
            host.create(Stored.of(done), done, None)
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
