"""The job queue contract, on every store that holds jobs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aptools import Action, MemoryStore, RequestKey, SQLiteStore, Store, Stored
from aptools.jobs import JobQueue

from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    pg_url_fixture,
    schema_fixture,
)

NOW = 1_800_000_000.0
WHO = {"identity_id": "x", "identities": ["urn:globus:auth:identity:x"]}


class Backend:
    """Where actions are stored, and the job queue beside them."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        found = None if store is None else store.jobs()
        self.queue: JobQueue | None = found

    def put(self, action_id: str, status: str) -> None:
        assert self.store is not None
        action = Action(
            action_id=action_id,
            status=status,  # type: ignore[arg-type]
            creator_id="urn:globus:auth:identity:x",
            request_id=action_id,
            start_time="2027-01-15T08:00:00+00:00",
        )
        key = RequestKey(action.creator_id, action_id, "f")
        held = self.store.reserve(key, action_id, NOW, 60)
        assert held.outcome == "new"
        self.store.create(Stored.of(action), action, None)

    def set(self, action_id: str, status: str) -> None:
        assert self.store is not None
        found = self.store.get(action_id, NOW)
        assert found is not None
        action = found.action()
        action.status = status  # type: ignore[assignment]
        assert self.store.update(action_id, Stored.of(action), None, NOW)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgresql":
        from aptools.store.postgresql import PostgreSQLStore

        root = PostgreSQLStore(request.getfixturevalue("pg_url"))
        made = Backend(root.for_provider("ns"))
        root.close()
    elif request.param == "sqlite":
        made = Backend(SQLiteStore(tmp_path / "q.db"))
    else:
        made = Backend(MemoryStore())
    yield made
    made.close()


@pytest.fixture
def queue(store: Backend) -> JobQueue:
    assert store.queue is not None
    return store.queue


def stored_action(store: Backend, action_id: str, status: str = "ACTIVE") -> None:
    store.put(action_id, status)


def test_a_job_is_claimable_once_its_action_is_stored(
    store: Backend, queue: JobQueue
) -> None:
    queue.enqueue("a1", NOW, None, WHO)
    assert queue.claim("p1", NOW, 10, 5) == []  # not stored yet
    stored_action(store, "a1")
    [claimed] = queue.claim("p1", NOW, 10, 5)
    assert (claimed.action_id, claimed.attempts, claimed.checkpoint) == ("a1", 1, None)
    assert claimed.caller == WHO
    # Held: nobody else gets it while the lease runs.
    assert queue.claim("p2", NOW + 9, 10, 5) == []


def test_a_lease_that_runs_out_hands_the_job_over_with_its_checkpoint(
    store: Backend, queue: JobQueue
) -> None:
    stored_action(store, "a1")
    queue.enqueue("a1", NOW, None, WHO)
    queue.claim("p1", NOW, 10, 5)
    assert queue.checkpoint("p1", "a1", b'{"step": 3}')
    assert [b.action_id for b in queue.heartbeat("p1", ["a1"], NOW + 8, 10)] == ["a1"]
    assert queue.claim("p2", NOW + 12, 10, 5) == []  # renewed until NOW + 18
    [taken] = queue.claim("p2", NOW + 19, 10, 5)
    assert (taken.attempts, taken.checkpoint) == (2, {"step": 3})
    # The old holder learns it lost the job, and can no longer checkpoint.
    assert queue.heartbeat("p1", ["a1"], NOW + 20, 10) == []
    assert not queue.checkpoint("p1", "a1", b"1")


def test_a_handed_back_job_is_claimable_at_once_and_not_counted(
    store: Backend, queue: JobQueue
) -> None:
    stored_action(store, "a1")
    queue.enqueue("a1", NOW, None, WHO)
    queue.claim("p1", NOW, 60, 5)
    queue.hand_back("p1", ["a1"])
    [again] = queue.claim("p2", NOW + 1, 60, 5)
    assert again.attempts == 1


def test_an_interrupted_job_is_claimable_at_once_and_counted(
    store: Backend, queue: JobQueue
) -> None:
    stored_action(store, "a1")
    queue.enqueue("a1", NOW, None, WHO)
    queue.claim("p1", NOW, 60, 5)
    assert queue.checkpoint("p1", "a1", b'{"step": 1}')
    queue.interrupt("p2", ["a1"])  # not p2's: nothing happens
    assert queue.claim("p2", NOW + 1, 60, 5) == []
    queue.interrupt("p1", ["a1"])
    [again] = queue.claim("p2", NOW + 1, 60, 5)
    assert (again.attempts, again.checkpoint) == (2, {"step": 1})
    assert queue.heartbeat("p1", ["a1"], NOW + 2, 60) == []  # p1 lost it


def test_a_waiting_job_resumes_with_a_new_caller_and_its_checkpoint(
    store: Backend, queue: JobQueue
) -> None:
    other = {"identity_id": "y", "identities": ["urn:globus:auth:identity:y"]}
    stored_action(store, "a1")
    queue.enqueue("a1", NOW, None, WHO, b"old")
    queue.claim("p1", NOW, 60, 5)
    assert queue.checkpoint("p1", "a1", b'{"step": 2}')
    store.set("a1", "INACTIVE")  # waiting for consent: handed back
    queue.hand_back("p1", ["a1"])
    assert queue.claim("p2", NOW + 1, 60, 5) == []
    assert queue.requeue_for("a1", other, b"sealed")
    assert not queue.requeue_for("a2", other, None)
    assert queue.claim("p2", NOW + 1, 60, 5) == []  # until ACTIVE again
    store.set("a1", "ACTIVE")
    [again] = queue.claim("p2", NOW + 2, 60, 5)
    assert (again.caller, again.tokens) == (other, b"sealed")
    assert (again.checkpoint, again.attempts) == ({"step": 2}, 1)


def test_claims_respect_the_limit_and_the_order(
    store: Backend, queue: JobQueue
) -> None:
    for k in range(6):
        stored_action(store, f"a{k}")
        queue.enqueue(f"a{k}", NOW + k, None, WHO)
    first = queue.claim("p1", NOW, 10, 4)
    second = queue.claim("p2", NOW, 10, 4)
    assert [c.action_id for c in first] == ["a0", "a1", "a2", "a3"]
    assert [c.action_id for c in second] == ["a4", "a5"]


def test_cancel_reaches_the_holder_at_its_heartbeat(
    store: Backend, queue: JobQueue
) -> None:
    stored_action(store, "a1")
    queue.enqueue("a1", NOW, None, WHO)
    queue.claim("p1", NOW, 10, 5)
    assert [b.stop for b in queue.heartbeat("p1", ["a1"], NOW, 10)] == [False]
    queue.request_cancel("a1")
    assert [b.stop for b in queue.heartbeat("p1", ["a1"], NOW, 10)] == [True]


def test_deadlines_and_sweeping(store: Backend, queue: JobQueue) -> None:
    stored_action(store, "late")
    stored_action(store, "ok")
    stored_action(store, "over", status="SUCCEEDED")
    queue.enqueue("late", NOW, NOW + 5, WHO)
    queue.enqueue("ok", NOW, NOW + 50, WHO)
    queue.enqueue("over", NOW, NOW + 1, WHO)
    queue.enqueue("never-stored", NOW, None, WHO)
    assert queue.due(NOW + 10) == ["late"]
    # Rows of ended or never-stored actions go once past the grace period.
    assert queue.sweep(NOW + 10, grace=60) == 0
    assert queue.sweep(NOW + 100, grace=60) == 2
    assert sorted(c.action_id for c in queue.claim("p", NOW + 100, 5, 9)) == [
        "late",
        "ok",
    ]
    queue.delete("late")
    assert queue.due(NOW + 100) == ["ok"]


def test_claimers_at_once_never_take_a_job_twice(
    store: Backend, queue: JobQueue
) -> None:
    for k in range(200):
        stored_action(store, f"c{k:03d}")
        queue.enqueue(f"c{k:03d}", NOW, None, WHO)
    taken: list[str] = []
    lock = threading.Lock()

    def claimer(owner: str) -> None:
        while True:
            got = queue.claim(owner, NOW, 60, 5)
            if not got:
                return
            with lock:
                taken.extend(c.action_id for c in got)

    threads = [threading.Thread(target=claimer, args=(f"p{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == [f"c{k:03d}" for k in range(200)]
