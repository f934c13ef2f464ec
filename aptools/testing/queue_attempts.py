"""The job-queue contract's attempt count: what :class:`JobQueueContract`
proves of :meth:`~aptools.store.jobqueue.JobQueue.interrupt` and of the
``attempts`` a claim reports, on which a runner's ``max_attempts`` rests.

Every way a process can end while it holds a job counts one attempt: a
take-over after its lease ran out (a crash, SIGKILL, a freeze) and an
interrupt (SIGTERM while the job runs). A hand-back (the job was not
started, or waits INACTIVE for its caller) and a resume do not count.
Mixed into :class:`~aptools.testing.queue_contract.JobQueueContract`; not
used on its own.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from aptools.errors import JobLost
from aptools.store import Stored
from aptools.store.jobqueue import Fence

if TYPE_CHECKING:
    from aptools.store import Store
    from aptools.store.jobqueue import Claimed, JobQueue

__all__ = ["AttemptsContract"]

#: A lease long enough never to run out during a test.
LONG = 600.0
#: A lease that runs out quickly, for take-overs.
SHORT = 0.3


class AttemptsContract:
    """Interrupts and the attempt count (the contract's helpers are the
    :class:`~aptools.testing.queue_contract.JobQueueContract`'s)."""

    if TYPE_CHECKING:

        def queued(self, store: Store, queue: JobQueue, action_id: str) -> None: ...

        @staticmethod
        def take_over(queue: JobQueue, owner: str) -> Claimed: ...

    def test_an_interrupted_job_is_claimable_at_once_and_counted(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [held] = queue.claim("p1", LONG, 5)
        queue.checkpoint(held.fence, b'{"step": 1}')
        # A fence the row no longer matches interrupts nothing.
        queue.interrupt([Fence("a1", "p1", held.fence.claim - 1)])
        queue.interrupt([Fence("a1", "p2", held.fence.claim)])
        assert queue.claim("p2", LONG, 5) == []
        queue.interrupt([held.fence])
        [again] = queue.claim("p2", LONG, 5)  # at once, not after the lease
        assert (again.attempts, again.checkpoint) == (2, {"step": 1})
        assert again.fence.claim > held.fence.claim
        # The interrupted holder is fenced out.
        assert queue.heartbeat([held.fence], LONG) == []
        with pytest.raises(JobLost):
            queue.checkpoint(held.fence, b'{"step": 9}')

    def test_every_ended_process_counts_one_attempt_and_a_hand_back_none(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [first] = queue.claim("p1", SHORT, 5)
        assert first.attempts == 1
        second = self.take_over(queue, "p2")  # p1 died: its lease ran out
        assert second.attempts == 2
        queue.interrupt([second.fence])  # p2 got SIGTERM while running it
        [third] = queue.claim("p3", LONG, 5)
        assert third.attempts == 3
        queue.hand_back([third.fence])  # p3 never started it
        [fourth] = queue.claim("p4", LONG, 5)
        assert fourth.attempts == 3
        # Waiting INACTIVE and resumed: no attempt either.
        waiting = store.get("a1", time.time())
        assert waiting is not None
        act = waiting.action()
        act.status = "INACTIVE"
        queue.conclude(fourth.fence, Stored.of(act), None, keep=True)
        act.status = "ACTIVE"
        going = Stored.of(act)
        assert queue.requeue_for("a1", going, {"identity_id": "x"}, None, None)
        [fifth] = queue.claim("p5", LONG, 5)
        assert fifth.attempts == 3
