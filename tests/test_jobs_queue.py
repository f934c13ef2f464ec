"""The job queue contract, on every store that holds jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aptools import Action, MemoryStore, SQLiteStore, Store, Stored
from aptools.jobs import JobQueue

NOW = 1_800_000_000.0
WHO = {"identity_id": "x", "identities": ["urn:globus:auth:identity:x"]}


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "q.db")
    )
    yield made
    made.close()


@pytest.fixture
def queue(store: Store) -> JobQueue:
    found = store.jobs()
    assert found is not None
    return found


def stored_action(store: Store, action_id: str, status: str = "ACTIVE") -> Action:
    action = Action(
        action_id=action_id,
        status=status,  # type: ignore[arg-type]
        creator_id="urn:globus:auth:identity:x",
        request_id=action_id,
        start_time="2027-01-15T08:00:00+00:00",
    )
    assert (
        store.reserve(action.creator_id, action_id, "f", action_id, NOW, 60).outcome
        == "new"
    )
    store.finish(Stored.of(action), action, None)
    return action


def test_a_job_is_claimable_once_its_action_is_stored(
    store: Store, queue: JobQueue
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
    store: Store, queue: JobQueue
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
    store: Store, queue: JobQueue
) -> None:
    stored_action(store, "a1")
    queue.enqueue("a1", NOW, None, WHO)
    queue.claim("p1", NOW, 60, 5)
    queue.release("p1", ["a1"])
    [again] = queue.claim("p2", NOW + 1, 60, 5)
    assert again.attempts == 1


def test_claims_respect_the_limit_and_the_order(store: Store, queue: JobQueue) -> None:
    for k in range(6):
        stored_action(store, f"a{k}")
        queue.enqueue(f"a{k}", NOW + k, None, WHO)
    first = queue.claim("p1", NOW, 10, 4)
    second = queue.claim("p2", NOW, 10, 4)
    assert [c.action_id for c in first] == ["a0", "a1", "a2", "a3"]
    assert [c.action_id for c in second] == ["a4", "a5"]


def test_cancel_reaches_the_holder_at_its_heartbeat(
    store: Store, queue: JobQueue
) -> None:
    stored_action(store, "a1")
    queue.enqueue("a1", NOW, None, WHO)
    queue.claim("p1", NOW, 10, 5)
    assert [b.stop for b in queue.heartbeat("p1", ["a1"], NOW, 10)] == [False]
    queue.request_cancel("a1")
    assert [b.stop for b in queue.heartbeat("p1", ["a1"], NOW, 10)] == [True]


def test_deadlines_and_sweeping(store: Store, queue: JobQueue) -> None:
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
    queue.finish("late")
    assert queue.due(NOW + 100) == ["ok"]
