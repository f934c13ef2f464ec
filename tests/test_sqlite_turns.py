"""The writes of one process's threads to a SQLite file take turns at a lock
of the process (aptools.store.sqlite.file.File.writing), not at SQLite's
write lock, whose busy handler sleeps in steps of milliseconds."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from aptools import Action, RequestKey, SQLiteStore, Stored
from aptools.models import isoformat

NOW = 1_900_000_000.0
ALICE = "urn:globus:auth:identity:00000000-0000-0000-0000-00000000000a"


def _stored(store: SQLiteStore, action_id: str) -> Action:
    act = Action(
        action_id=action_id,
        status="ACTIVE",
        creator_id=ALICE,
        request_id="req-" + action_id,
        start_time=isoformat(NOW),
    )
    key = RequestKey(ALICE, act.request_id, "fp")
    assert store.reserve(key, action_id, NOW, 60).outcome == "new"
    store.create(Stored.of(act), act, None)
    return act


def test_a_write_waits_for_another_threads_turn(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "turns.db")
    queue = store.jobs()
    act = _stored(store, "a1")
    done = threading.Event()

    def write() -> None:
        queue.enqueue("a1", None, {"identity_id": ALICE})
        act.display_status = "Going"
        store.update("a1", Stored.of(act), None, NOW)
        done.set()

    with store._file.writing():
        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.3)  # no SQLite lock is held: only the turn
    assert done.wait(10)
    writer.join()
    assert len(queue.rows()) == 1
    assert store.get("a1", NOW) is not None
    store.close()


def test_a_turn_is_waited_for_at_most_the_timeout(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "turns.db", timeout=0.2)
    queue = store.jobs()
    failed: list[BaseException] = []

    def write() -> None:
        try:
            queue.enqueue("a1", None, {"identity_id": ALICE})
        except BaseException as exc:
            failed.append(exc)

    with store._file.writing():
        began = time.monotonic()
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(10)
        took = time.monotonic() - began
    assert [type(exc) for exc in failed] == [sqlite3.OperationalError]
    assert "database is locked" in str(failed[0])
    assert 0.15 <= took < 5
    assert queue.rows() == []  # nothing was written
    store.close()


def _child_writes(store: SQLiteStore, answer: multiprocessing.Queue[str]) -> None:
    try:  # with the store it inherited
        store.jobs().enqueue("child", None, {"identity_id": ALICE})
        answer.put("written")
    except BaseException as exc:
        answer.put(repr(exc))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs fork"
)
def test_a_child_forked_during_a_turn_has_its_own(tmp_path: Path) -> None:
    # Forked while a thread of the parent held the turn: the child has not
    # that thread, and must not wait for a lock nobody will release.
    path = str(tmp_path / "turns.db")
    store = SQLiteStore(path, timeout=2)
    queue = store.jobs()
    queue.enqueue("parent", None, {"identity_id": ALICE})  # the turn made here
    fork = multiprocessing.get_context("fork")
    answer: multiprocessing.Queue[str] = fork.Queue()
    with store._file.writing():
        child = fork.Process(target=_child_writes, args=(store, answer))
        child.start()
        child.join(30)
    assert answer.get(timeout=5) == "written"
    assert sorted(row.action_id for row in queue.rows()) == ["child", "parent"]
    store.close()
