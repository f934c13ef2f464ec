"""The fixtures and helpers shared by the job-queue contract's tests
(:mod:`aptools.testing.queue_contract`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from aptools.models import Action, isoformat
from aptools.store import RequestKey, Store, Stored
from aptools.store.jobqueue import Claimed, JobQueue
from aptools.testing.waiting import wait_for

__all__ = ["LONG", "OTHER", "SCOPE", "SHORT", "WHO", "QueueFixtures"]

ALICE = "urn:globus:auth:identity:00000000-0000-4000-8000-00000000000a"
WHO = {"identity_id": ALICE, "identities": [ALICE]}
OTHER = {"identity_id": "b", "identities": ["urn:globus:auth:identity:b"]}
SCOPE = "https://auth.globus.org/scopes/00000000-0000-4000-8000-000000000001/all"
#: A lease long enough never to run out during a test.
LONG = 600.0
#: A lease that runs out quickly, for take-overs.
SHORT = 0.3


def _action(action_id: str, status: str = "ACTIVE", **fields: Any) -> Action:
    made: dict[str, Any] = {
        "action_id": action_id,
        "status": status,
        "creator_id": ALICE,
        "request_id": "req-" + action_id,
        "start_time": isoformat(time.time()),
    }
    made.update(fields)
    return Action(**made)


class QueueFixtures:
    """The fixtures and helpers of the job-queue contract's tests; override
    the ``make_store`` fixture."""

    @pytest.fixture
    def make_store(self) -> Iterator[Store]:
        """Yield a new, empty store, and close it afterwards (override)."""
        raise NotImplementedError("a JobQueueContract subclass overrides make_store")

    @pytest.fixture
    def store(self, make_store: Store) -> Store:
        return make_store.for_provider(f"{SCOPE} /one")

    @pytest.fixture
    def queue(self, store: Store) -> JobQueue:
        found = store.jobs()
        assert found is not None, "this store keeps no jobs"
        return found

    # -- helpers --------------------------------------------------------------------

    @staticmethod
    def put(store: Store, action_id: str, status: str = "ACTIVE") -> Stored:
        act = _action(action_id, status)
        now = time.time()
        key = RequestKey(act.creator_id, act.request_id, "fp")
        assert store.reserve(key, action_id, now, 60).outcome == "new"
        stored = Stored.of(act)
        store.create(stored, act, None)
        return stored

    @staticmethod
    def change(store: Store, action_id: str, status: str, **fields: Any) -> Stored:
        found = store.get(action_id, time.time())
        assert found is not None
        act = found.action()
        act.status = status  # type: ignore[assignment]
        for name, value in fields.items():
            setattr(act, name, value)
        return Stored.of(act)

    def queued(self, store: Store, queue: JobQueue, action_id: str) -> None:
        queue.enqueue(action_id, None, WHO)
        self.put(store, action_id)

    @staticmethod
    def take_over(queue: JobQueue, owner: str) -> Claimed:
        """Wait for a lease to run out, and claim the job as ``owner``."""
        got = wait_for(
            lambda: queue.claim(owner, LONG, 1), "a lease ran out", timeout=30
        )
        return got[0]
