"""The job-queue contract's hand-over: what :class:`JobQueueContract` proves
of :meth:`~aptools.store.jobqueue.JobQueue.conclude_and_claim`, a job's end
that claims its holder's next jobs in the same transaction.

The end is :meth:`~aptools.store.jobqueue.JobQueue.conclude`'s (fenced, the
outcome and the row's end as one); the claim is
:meth:`~aptools.store.jobqueue.JobQueue.claim`'s (or ``claim_fair``'s), taken
only if the end was, and never of the ended job. Mixed into
:class:`~aptools.testing.queue_contract.JobQueueContract`; not used on its
own.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from aptools.errors import JobLost
from aptools.testing._queue_parts import LONG, OTHER, SHORT, WHO

if TYPE_CHECKING:
    from aptools.store import Store, Stored
    from aptools.store.jobqueue import Claimed, JobQueue

__all__ = ["HandoverContract"]


class HandoverContract:
    """A job's end that claims the next (the contract's helpers are the
    :class:`~aptools.testing.queue_contract.JobQueueContract`'s)."""

    if TYPE_CHECKING:

        def queued(self, store: Store, queue: JobQueue, action_id: str) -> None: ...

        @staticmethod
        def put(store: Store, action_id: str, status: str = ...) -> Stored: ...

        @staticmethod
        def change(
            store: Store, action_id: str, status: str, **fields: Any
        ) -> Stored: ...

        @staticmethod
        def take_over(queue: JobQueue, owner: str) -> Claimed: ...

    def test_an_end_claims_the_next_job_in_order(
        self, store: Store, queue: JobQueue
    ) -> None:
        for action_id in ("a1", "a2", "a3"):
            self.queued(store, queue, action_id)
            time.sleep(0.002)  # enqueued in this order
        [held] = queue.claim("p1", LONG, 1)
        done = self.change(store, "a1", "SUCCEEDED", details={"n": 1})
        [after] = queue.conclude_and_claim(held.fence, done, None, False, "p1", LONG, 1)
        assert store.get("a1", time.time()) == done
        assert not queue.delete(held.fence)  # the row went with it
        assert (after.action_id, after.attempts, after.caller) == ("a2", 1, WHO)
        assert (after.fence.action_id, after.fence.owner) == ("a2", "p1")
        # Held by its new fence, under the lease given.
        assert [b.action_id for b in queue.heartbeat([after.fence], LONG)] == ["a2"]
        [last] = queue.claim("p2", LONG, 5)
        assert last.action_id == "a3"

    def test_an_end_refused_claims_nothing(self, store: Store, queue: JobQueue) -> None:
        self.queued(store, queue, "a1")
        [stale] = queue.claim("p1", SHORT, 1)
        fresh = self.take_over(queue, "p2")
        self.queued(store, queue, "a2")
        done = self.change(store, "a1", "SUCCEEDED")
        for keep in (False, True):
            with pytest.raises(JobLost):
                queue.conclude_and_claim(stale.fence, done, None, keep, "p1", LONG, 5)
        found = store.get("a1", time.time())
        assert found is not None and found.status == "ACTIVE"
        # Nothing was claimed: a2 is anyone's, a1 still the new holder's.
        [other] = queue.claim("p3", LONG, 5)
        assert other.action_id == "a2"
        assert [b.action_id for b in queue.heartbeat([fresh.fence], LONG)] == ["a1"]

    def test_the_ended_job_is_never_claimed_by_its_end(
        self, store: Store, queue: JobQueue
    ) -> None:
        # Its lease ran out, but nobody took it: the end is the holder's, and
        # the job, still ACTIVE when the end began, is not claimed again.
        self.queued(store, queue, "a1")
        [held] = queue.claim("p1", SHORT, 1)
        time.sleep(SHORT * 2)
        done = self.change(store, "a1", "SUCCEEDED")
        assert (
            queue.conclude_and_claim(held.fence, done, None, False, "p1", LONG, 5) == []
        )
        assert store.get("a1", time.time()) == done
        assert queue.claim("p2", LONG, 5) == []

    def test_a_job_ending_inactive_keeps_its_row_and_is_not_claimed(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [held] = queue.claim("p1", LONG, 1)
        self.queued(store, queue, "a2")
        queue.checkpoint(held.fence, b'{"step": 2}')
        waiting = self.change(store, "a1", "INACTIVE")
        got = queue.conclude_and_claim(held.fence, waiting, None, True, "p1", LONG, 5)
        assert [c.action_id for c in got] == ["a2"]
        assert store.get("a1", time.time()) == waiting
        going = self.change(store, "a1", "ACTIVE")
        assert queue.requeue_for("a1", going, WHO, None, None) == going
        [again] = queue.claim("p2", LONG, 5)
        assert (again.action_id, again.checkpoint, again.attempts) == (
            "a1",
            {"step": 2},
            1,
        )

    def test_an_end_claims_fairly_with_a_cap_per_caller(
        self, store: Store, queue: JobQueue
    ) -> None:
        # WHO holds a0 elsewhere; with a cap of 1, WHO's a2 waits and the
        # other caller's a3 is claimed past it.
        for action_id in ("a0", "a1"):
            self.queued(store, queue, action_id)
            time.sleep(0.002)
        [elsewhere] = queue.claim("p0", LONG, 1)
        [held] = queue.claim("p1", LONG, 1)
        assert (elsewhere.action_id, held.action_id) == ("a0", "a1")
        self.queued(store, queue, "a2")
        time.sleep(0.002)
        queue.enqueue("a3", None, OTHER)
        self.put(store, "a3")
        done = self.change(store, "a1", "SUCCEEDED")
        got = queue.conclude_and_claim(held.fence, done, None, False, "p1", LONG, 5, 1)
        assert [(c.action_id, c.caller) for c in got] == [("a3", OTHER)]
        assert store.get("a1", time.time()) == done
        [later] = queue.claim("p2", LONG, 5)  # the plain claim has no cap
        assert later.action_id == "a2"
