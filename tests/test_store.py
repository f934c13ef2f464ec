"""The store contract, for every store; SQLite across processes and restarts."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from aptools import Action, MemoryStore, SQLiteStore, Store, Stored, open_store
from aptools.models import isoformat

NOW = 1_900_000_000.0
ALICE = "urn:globus:auth:identity:00000000-0000-0000-0000-00000000000a"
BOB = "urn:globus:auth:identity:00000000-0000-0000-0000-00000000000b"
GROUP = "urn:globus:groups:id:00000000-0000-0000-0000-0000000000aa"


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    )
    yield made
    made.close()


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


def put(store: Store, act: Action, expires_at: float | None = None) -> None:
    assert (
        store.reserve(
            act.creator_id, act.request_id, "fp", act.action_id, NOW, 60
        ).outcome
        == "new"
    )
    store.finish(Stored.of(act), act, expires_at)


def test_reserve_outcomes(store: Store) -> None:
    assert store.reserve(ALICE, "r", "fp1", "a1", NOW, 60).outcome == "new"
    assert store.reserve(ALICE, "r", "fp1", "a2", NOW, 60).outcome == "pending"
    assert store.reserve(ALICE, "r", "fp2", "a2", NOW, 60).outcome == "conflict"
    assert store.get("a1", NOW) is None  # pending actions are invisible
    done = action("a1", request_id="r")
    store.finish(Stored.of(done), done, None)
    found = store.reserve(ALICE, "r", "fp1", "a3", NOW, 60)
    assert found.outcome == "existing" and found.stored is not None
    assert found.stored.action().action_id == "a1"
    assert store.reserve(BOB, "r", "fp2", "b1", NOW, 60).outcome == "new"


def test_stale_reservation_is_taken_over(store: Store) -> None:
    assert store.reserve(ALICE, "r", "fp", "a1", NOW, 60).outcome == "new"
    assert store.reserve(ALICE, "r", "fp", "a2", NOW + 61, 60).outcome == "new"
    done = action("a2", request_id="r")
    store.finish(Stored.of(done), done, None)
    assert store.get("a2", NOW) is not None


def test_abandon_frees_the_key(store: Store) -> None:
    assert store.reserve(ALICE, "r", "fp", "a1", NOW, 60).outcome == "new"
    store.abandon("a1")
    assert store.reserve(ALICE, "r", "fp", "a2", NOW, 60).outcome == "new"


def test_copies_are_private(store: Store) -> None:
    put(store, action("a1", details={"n": 1}))
    got = store.get("a1", NOW)
    assert got is not None
    copy = got.action()
    copy.details["n"] = 2
    again = store.get("a1", NOW)
    assert again is not None and again.action().details == {"n": 1}
    assert orjson.loads(again.public)["details"] == {"n": 1}


def test_terminal_actions_never_change(store: Store) -> None:
    put(store, action("a1"))
    finished = Stored.of(action("a1", "SUCCEEDED", details={"r": 1}))
    done = store.update("a1", finished, NOW + 100, NOW)
    assert done is not None and done.status == "SUCCEEDED"
    back = store.update("a1", Stored.of(action("a1", "ACTIVE")), None, NOW)
    assert back is not None and back.status == "SUCCEEDED"
    assert back.action().details == {"r": 1}
    assert store.update("missing", Stored.of(action("missing")), None, NOW) is None


def test_expiry_and_purge(store: Store) -> None:
    put(store, action("a1", "SUCCEEDED"), expires_at=NOW + 10)
    put(store, action("a2"))
    assert store.get("a1", NOW + 9) is not None
    assert store.get("a1", NOW + 10) is None
    assert store.purge(NOW + 11) == 1
    assert store.get("a2", NOW + 11) is not None
    assert store.reserve(ALICE, "req-a1", "other", "a3", NOW + 11, 60).outcome == "new"


def test_delete_removes_action_and_key(store: Store) -> None:
    put(store, action("a1", "FAILED"))
    store.delete("a1")
    assert store.get("a1", NOW) is None
    assert store.reserve(ALICE, "req-a1", "fp", "a2", NOW, 60).outcome == "new"


def test_list_by_principal_role_and_status(store: Store) -> None:
    put(store, action("a1"))
    put(store, action("a2", "SUCCEEDED"))
    put(store, action("b1", creator_id=BOB, monitor_by=[ALICE]))
    put(store, action("b2", creator_id=BOB, manage_by=[GROUP]))
    put(store, action("b3", creator_id=BOB))

    def ids(roles: dict[str, set[str]], statuses: set[str]) -> set[str]:
        return {a.action_id for a in store.list(roles, statuses, NOW)}

    assert ids({"creator_id": {ALICE}}, {"ACTIVE"}) == {"a1"}
    assert ids({"creator_id": {ALICE}}, {"ACTIVE", "SUCCEEDED"}) == {"a1", "a2"}
    assert ids({"monitor_by": {ALICE}}, {"ACTIVE"}) == {"b1"}
    assert ids({"manage_by": {ALICE, GROUP}}, {"ACTIVE"}) == {"b2"}
    assert ids({"creator_id": {ALICE}, "monitor_by": {ALICE}}, {"ACTIVE"}) == {
        "a1",
        "b1",
    }
    assert ids({"creator_id": {BOB}}, set()) == set()


def test_sqlite_survives_reopening(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "s.db")
    put(first, action("a1", details={"kept": True}))
    first.close()
    second = open_store(f"sqlite:///{tmp_path}/s.db")
    got = second.get("a1", NOW)
    assert got is not None and got.action().details == {"kept": True}
    second.close()


def _race(
    path: str,
    n: int,
    queue: multiprocessing.Queue,  # type: ignore[type-arg]
    done: Any,
) -> None:
    store = SQLiteStore(path)
    outcomes = [
        store.reserve(ALICE, f"r{i}", "fp", f"p{n}-{i}", time.time(), 60).outcome
        for i in range(40)
    ]
    queue.put(outcomes)
    done.wait(60)  # hold every claim until all have tried
    store.close()


def test_sqlite_reserve_is_atomic_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "race.db")
    SQLiteStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    done = ctx.Event()
    workers = [ctx.Process(target=_race, args=(path, n, queue, done)) for n in range(4)]
    for w in workers:
        w.start()
    try:
        results = [queue.get(timeout=60) for _ in workers]
    finally:
        done.set()
        for w in workers:
            w.join(timeout=60)
    for i in range(40):
        column = [r[i] for r in results]
        assert column.count("new") == 1, column
        assert column.count("pending") == 3


def _open_new_files(
    folder: str,
    count: int,
    together: Any,
    queue: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    failures = []
    for i in range(count):
        together.wait(60)
        try:
            store = SQLiteStore(os.path.join(folder, f"{i}.db"))
            store.reserve(ALICE, "r", "fp", f"a{os.getpid()}", time.time(), 60)
            store.close()
        except Exception as exc:  # reported to the test
            failures.append(f"{i}: {exc!r}")
    queue.put(failures)


def test_sqlite_processes_may_open_a_new_file_at_once(tmp_path: Path) -> None:
    # As gunicorn's workers do on a first start: each opens the store, so
    # each may be the one creating the file, switching it to WAL and making
    # its tables, while the others do the same.
    ctx = multiprocessing.get_context("spawn")
    together = ctx.Barrier(4)
    queue = ctx.Queue()
    openers = [
        ctx.Process(target=_open_new_files, args=(str(tmp_path), 150, together, queue))
        for _ in range(4)
    ]
    for p in openers:
        p.start()
    try:
        failures = [f for _ in openers for f in queue.get(timeout=120)]
    finally:
        for p in openers:
            p.join(timeout=60)
    assert failures == []


def test_sqlite_opens_while_another_process_writes(tmp_path: Path) -> None:
    # A worker (re)started while others write must not wait for them: where
    # the tables exist, opening the store takes no write lock.
    path = tmp_path / "busy.db"
    SQLiteStore(path).close()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM aptools_actions")
    try:
        store = SQLiteStore(path, timeout=0)  # never waits for a lock
        assert store.get("a1", NOW) is None
        store.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def _hold(path: str, request_id: str, finish: bool, ready: Any, go: Any) -> None:
    store = SQLiteStore(path)
    assert store.reserve(ALICE, request_id, "fp", "held", NOW, 60).outcome == "new"
    ready.set()
    go.wait(60)
    if finish:
        done = action("held", "SUCCEEDED", request_id=request_id)
        store.finish(Stored.of(done), done, None)
        store.close()
        return
    os._exit(1)  # dies holding the claim, as a crashed worker would


@pytest.mark.parametrize("finish", [True, False], ids=["finished", "crashed"])
def test_sqlite_claim_lives_as_long_as_its_holder(tmp_path: Path, finish: bool) -> None:
    path = str(tmp_path / "held.db")
    store = SQLiteStore(path)
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(path, "r", finish, ready, go))
    holder.start()
    try:
        assert ready.wait(60)
        # Held by a live process, however old: no lease to wait out.
        assert store.reserve(ALICE, "r", "fp", "mine", NOW + 10**6, 60).outcome == (
            "pending"
        )
    finally:
        go.set()
        holder.join(timeout=60)
    after = store.reserve(ALICE, "r", "fp", "mine", NOW, 60)
    if finish:
        assert after.outcome == "existing" and after.stored is not None
        assert after.stored.action_id == "held"
    else:
        assert holder.exitcode == 1
        assert after.outcome == "new"  # the dead holder's key is free at once
        assert store.get("held", NOW) is None
    store.close()


def test_sqlite_stores_of_one_file_in_one_process_share_claims(
    tmp_path: Path,
) -> None:
    first = SQLiteStore(tmp_path / "s.db")
    second = SQLiteStore(tmp_path / "s.db")
    assert first.reserve(ALICE, "r", "fp", "a1", NOW, 60).outcome == "new"
    assert second.reserve(ALICE, "r", "fp", "a2", NOW, 60).outcome == "pending"
    second.close()  # closing one store does not drop the other's claims
    assert first.reserve(ALICE, "r", "fp", "a3", NOW, 60).outcome == "pending"
    done = action("a1", request_id="r")
    first.finish(Stored.of(done), done, None)
    again = first.reserve(ALICE, "r", "fp", "a4", NOW, 60)
    assert again.outcome == "existing"
    first.close()


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store("memory:"), MemoryStore)
    made = open_store(f"sqlite:///{tmp_path}/x/y.db")
    assert isinstance(made, SQLiteStore) and (tmp_path / "x" / "y.db").exists()
    made.close()
    for bad in ("mysql://db", "sqlite:///", "file.db"):
        with pytest.raises(ValueError):
            open_store(bad)


def test_action_ids_differ_across_forks() -> None:
    import os as _os

    from aptools.protocol.lifecycle import new_action_id

    new_action_id()  # the parent has a pool of randomness now
    read, write = _os.pipe()
    pid = _os.fork()
    if pid == 0:  # the child writes the id it would hand out next
        _os.write(write, new_action_id().encode())
        _os._exit(0)
    _os.waitpid(pid, 0)
    child = _os.read(read, 64).decode()
    _os.close(read)
    _os.close(write)
    assert child != new_action_id()
