"""The SQLite store across processes, restarts and bad paths.

The contract every store keeps is in test_store_contract.py.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from aptools import (
    Action,
    MemoryStore,
    RequestKey,
    SQLiteStore,
    Store,
    Stored,
    open_store,
)
from aptools.models import isoformat

NOW = 1_900_000_000.0
ALICE = "urn:globus:auth:identity:00000000-0000-0000-0000-00000000000a"
BOB = "urn:globus:auth:identity:00000000-0000-0000-0000-00000000000b"


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
            RequestKey(act.creator_id, act.request_id, "fp"), act.action_id, NOW, 60
        ).outcome
        == "new"
    )
    store.create(Stored.of(act), act, expires_at)


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
        store.reserve(
            RequestKey(ALICE, f"r{i}", "fp"), f"p{n}-{i}", time.time(), 60
        ).outcome
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
            store.reserve(
                RequestKey(ALICE, "r", "fp"), f"a{os.getpid()}", time.time(), 60
            )
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
    assert (
        store.reserve(RequestKey(ALICE, request_id, "fp"), "held", NOW, 60).outcome
        == "new"
    )
    ready.set()
    go.wait(60)
    if finish:
        done = action("held", "SUCCEEDED", request_id=request_id)
        store.create(Stored.of(done), done, None)
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
        assert store.reserve(
            RequestKey(ALICE, "r", "fp"), "mine", NOW + 10**6, 60
        ).outcome == ("pending")
    finally:
        go.set()
        holder.join(timeout=60)
    after = store.reserve(RequestKey(ALICE, "r", "fp"), "mine", NOW, 60)
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
    assert first.reserve(RequestKey(ALICE, "r", "fp"), "a1", NOW, 60).outcome == "new"
    assert (
        second.reserve(RequestKey(ALICE, "r", "fp"), "a2", NOW, 60).outcome == "pending"
    )
    second.close()  # closing one store does not drop the other's claims
    assert (
        first.reserve(RequestKey(ALICE, "r", "fp"), "a3", NOW, 60).outcome == "pending"
    )
    done = action("a1", request_id="r")
    first.create(Stored.of(done), done, None)
    again = first.reserve(RequestKey(ALICE, "r", "fp"), "a4", NOW, 60)
    assert again.outcome == "existing"
    first.close()


def test_action_ids_differ_across_forks() -> None:
    import os as _os

    from aptools.actions import new_action_id

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


# -- paths that cannot hold a store ---------------------------------------------


def test_sqlite_refuses_a_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "deeper"
    with pytest.raises(ValueError, match="does not exist") as refused:
        SQLiteStore(missing / "actions.db")
    assert str(missing) in str(refused.value)
    assert not (tmp_path / "no-such-dir").exists()


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n" * 20)
    before = text.read_bytes()
    with pytest.raises(ValueError, match="not a SQLite database") as refused:
        SQLiteStore(text)
    assert str(text) in str(refused.value)
    assert text.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]


@pytest.mark.parametrize("where", ["a directory", "under a file", "memory"])
def test_sqlite_refuses_paths_that_cannot_be_a_database_file(
    tmp_path: Path, where: str
) -> None:
    (tmp_path / "file").write_text("x")
    path = {
        "a directory": str(tmp_path),
        "under a file": str(tmp_path / "file" / "a.db"),
        "memory": ":memory:",
    }[where]
    with pytest.raises(ValueError) as refused:
        SQLiteStore(path)
    assert path in str(refused.value) or str(tmp_path / "file") in str(refused.value)


# -- views -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_views_keep_a_subclass_and_its_state(tmp_path: Path, kind: str) -> None:
    base: type[Store] = MemoryStore if kind == "memory" else SQLiteStore

    class Counted(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.gets = 0

        def get(self, action_id: str, now: float) -> Stored | None:
            self.gets += 1
            found: Stored | None = super().get(action_id, now)
            return found

    made = Counted() if kind == "memory" else Counted(tmp_path / "s.db")
    view = made.for_provider("p")
    assert isinstance(view, Counted)
    assert view.get("a1", NOW) is None and view.gets == 1
    made.close()


def test_introspections_of_one_file_are_shared_by_its_stores(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "s.db").for_provider("p").introspections()
    second = SQLiteStore(tmp_path / "s.db").for_provider("p").introspections()
    first.put(b"k" * 32, NOW + 60, {"sub": "x"})
    assert second.get(b"k" * 32, NOW) == (NOW + 60, {"sub": "x"})
    with sqlite3.connect(tmp_path / "s.db") as db:
        [(key,)] = db.execute("SELECT key FROM aptools_introspections").fetchall()
    assert key != b"k" * 32  # scoped to the namespace, not the token's hash alone
