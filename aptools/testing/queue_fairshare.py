"""The job-queue contract's fair share: what :class:`JobQueueContract`
proves of :meth:`~aptools.store.jobqueue.JobQueue.ahead_of`, the place of a
job waiting its turn behind its caller's cap (``max_jobs_per_caller``).

A waiting job's place counts its caller's jobs that run (held by a live
lease) and those queued that a fair claim takes before it, their actions
ACTIVE; it changes as they are claimed and end, and a job that runs, waits
INACTIVE, was asked to stop or is unknown has none. Skipped on a queue
without fair share (one that does not override
:meth:`~aptools.store.jobqueue.JobQueue.claim_fair`). Mixed into
:class:`~aptools.testing.queue_contract.JobQueueContract`; not used on its
own.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from aptools.store.jobqueue import JobQueue
from aptools.testing._queue_parts import LONG, OTHER, WHO

if TYPE_CHECKING:
    from aptools.store import Store, Stored

__all__ = ["FairShareContract"]


class FairShareContract:
    """A waiting job's place (the contract's helpers are the
    :class:`~aptools.testing.queue_contract.JobQueueContract`'s)."""

    if TYPE_CHECKING:

        @staticmethod
        def put(store: Store, action_id: str, status: str = "ACTIVE") -> Stored: ...

        @staticmethod
        def change(
            store: Store, action_id: str, status: str, **fields: object
        ) -> Stored: ...

    @staticmethod
    def _fair(queue: JobQueue) -> None:
        if type(queue).claim_fair is JobQueue.claim_fair:
            pytest.skip(f"{type(queue).__name__} has no fair share")

    def _line(self, store: Store, queue: JobQueue, *jobs: str) -> None:
        for action_id in jobs:
            who = OTHER if action_id.startswith("b") else WHO
            queue.enqueue(action_id, None, who)
            self.put(store, action_id)
            time.sleep(0.002)  # enqueued in this order

    def test_a_waiting_jobs_place_follows_its_callers_jobs_ahead(
        self, store: Store, queue: JobQueue
    ) -> None:
        self._fair(queue)
        self._line(store, queue, "a0", "a1", "b0", "a2")
        places = {a: queue.ahead_of(a) for a in ("a0", "a1", "a2", "b0")}
        assert places == {"a0": 0, "a1": 1, "a2": 2, "b0": 0}
        taken = {c.action_id: c for c in queue.claim_fair("p", LONG, 9, 1)}
        assert sorted(taken) == ["a0", "b0"]
        # Running: no place; still ahead of the caller's waiting jobs.
        assert queue.ahead_of("a0") is None and queue.ahead_of("b0") is None
        assert (queue.ahead_of("a1"), queue.ahead_of("a2")) == (1, 2)
        done = self.change(store, "a0", "SUCCEEDED")
        queue.conclude(taken["a0"].fence, done, None, keep=False)
        assert (queue.ahead_of("a1"), queue.ahead_of("a2")) == (0, 1)
        [next_one] = queue.claim_fair("p", LONG, 9, 1)
        assert next_one.action_id == "a1"
        assert (queue.ahead_of("a1"), queue.ahead_of("a2")) == (None, 1)
        # Handed back (its holder stopping), it waits again, first in line.
        queue.hand_back([next_one.fence])
        assert (queue.ahead_of("a1"), queue.ahead_of("a2")) == (0, 1)

    def test_jobs_waiting_inactive_or_stopping_have_no_place_and_count_none(
        self, store: Store, queue: JobQueue
    ) -> None:
        self._fair(queue)
        self._line(store, queue, "a0", "a1", "a2", "a3")
        queue.enqueue("a4", None, WHO)
        self.put(store, "a4", "INACTIVE")  # waits for its caller
        queue.request_cancel("a1")  # never claimed again
        assert queue.ahead_of("a4") is None and queue.ahead_of("a1") is None
        assert queue.ahead_of("a3") == 2  # a0 and a2
        queue.enqueue("a5", None, WHO)
        self.put(store, "a5", "SUCCEEDED")  # ended: counts for none
        assert queue.ahead_of("a5") is None and queue.ahead_of("a3") == 2
        assert queue.ahead_of("unknown") is None
