"""The job-queue contract as pytest tests: prove that a store's
:class:`~aptools.jobs.JobQueue` keeps it.

Subclass :class:`JobQueueContract` in a test module and give it a
``make_store`` fixture that yields a new, empty store whose ``jobs()`` is
the queue to prove, and closes it after (the same fixture as
:class:`~aptools.testing.store_contract.StoreContract`'s)::

    import pytest
    from aptools.testing.queue_contract import JobQueueContract
    from my_package import RedisStore

    class TestRedisQueue(JobQueueContract):
        @pytest.fixture
        def make_store(self):
            store = RedisStore("redis://127.0.0.1/15")
            yield store
            store.close()

Every test then runs on that queue (:mod:`aptools.store.jobqueue`): claims
only of stored ACTIVE actions, never two holders at once (threads claiming
together), leases and take-overs on the queue's own clock, fencing (every
write of a holder whose job was taken over is refused, and changes nothing),
the outcome and the row's end as one (and the next job claimed in the same
transaction, :mod:`aptools.testing.queue_handover`), single-flight resume
(of resumes at once exactly one wins), deadlines (due, and no resume past
one), hand-back, interrupt and the attempt count every ended process adds to
(:mod:`aptools.testing.queue_attempts`, what ``max_attempts`` rests on),
the place of a job waiting its caller's turn
(:mod:`aptools.testing.queue_fairshare`),
cancellation, the sweep, two namespaces on one store, and kept tokens
(written only by the holder while the action is alive, gone with the
action's end, re-keyed by a compare-and-set that never brings them back).
Leases in these tests are short (a fraction of a second) and every wait is
a bounded poll, so a loaded machine slows the suite but does not fail it.
"""

from __future__ import annotations

import inspect
import threading
import time

import pytest

from aptools.errors import JobLost
from aptools.store import Store, Stored
from aptools.store.jobqueue import JobQueue
from aptools.testing._queue_parts import LONG, OTHER, SCOPE, SHORT, WHO
from aptools.testing._queue_tokens import KeptTokensContract
from aptools.testing.queue_attempts import AttemptsContract
from aptools.testing.queue_fairshare import FairShareContract
from aptools.testing.queue_handover import HandoverContract
from aptools.testing.waiting import wait_for

__all__ = ["JobQueueContract"]


class JobQueueContract(
    KeptTokensContract, AttemptsContract, FairShareContract, HandoverContract
):
    """Tests any job queue must pass; override the ``make_store`` fixture.
    The kept tokens' tests come from :class:`KeptTokensContract`, the attempt
    count's from :class:`~aptools.testing.queue_attempts.AttemptsContract`,
    a waiting job's place from
    :class:`~aptools.testing.queue_fairshare.FairShareContract`, a job's end
    claiming the next from
    :class:`~aptools.testing.queue_handover.HandoverContract`."""

    # -- claims ---------------------------------------------------------------------

    def test_a_job_is_claimable_once_its_action_is_stored(
        self, store: Store, queue: JobQueue
    ) -> None:
        queue.enqueue("a1", None, WHO, b"sealed")
        assert queue.claim("p1", LONG, 5) == []  # not stored yet
        self.put(store, "a1")
        [claimed] = queue.claim("p1", LONG, 5)
        assert (claimed.action_id, claimed.attempts, claimed.checkpoint) == (
            "a1",
            1,
            None,
        )
        assert (claimed.caller, claimed.tokens) == (WHO, b"sealed")
        assert (claimed.fence.action_id, claimed.fence.owner) == ("a1", "p1")
        assert queue.claim("p2", LONG, 5) == []  # held while the lease runs

    def test_claims_respect_the_limit_and_the_order(
        self, store: Store, queue: JobQueue
    ) -> None:
        for k in range(6):
            self.queued(store, queue, f"a{k}")
            time.sleep(0.002)  # enqueued at distinct times, in this order
        first = queue.claim("p1", LONG, 4)
        second = queue.claim("p2", LONG, 4)
        assert [c.action_id for c in first] == ["a0", "a1", "a2", "a3"]
        assert [c.action_id for c in second] == ["a4", "a5"]

    def test_claimers_at_once_never_take_a_job_twice(
        self, store: Store, queue: JobQueue
    ) -> None:
        for k in range(100):
            self.queued(store, queue, f"c{k:03d}")
        taken: list[str] = []
        lock = threading.Lock()

        def claimer(owner: str) -> None:
            while got := queue.claim(owner, LONG, 5):
                with lock:
                    taken.extend(c.action_id for c in got)

        threads = [threading.Thread(target=claimer, args=(f"p{i}",)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(taken) == [f"c{k:03d}" for k in range(100)]

    # -- leases, take-overs and fencing ---------------------------------------------

    def test_a_lease_renewed_holds_and_one_run_out_is_taken_over(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [first] = queue.claim("p1", SHORT, 5)
        queue.checkpoint(first.fence, b'{"step": 3}')
        assert [b.action_id for b in queue.heartbeat([first.fence], LONG)] == ["a1"]
        time.sleep(SHORT * 2)
        assert queue.claim("p2", LONG, 5) == []  # renewed: still p1's
        assert [b.action_id for b in queue.heartbeat([first.fence], SHORT)] == ["a1"]
        second = self.take_over(queue, "p2")
        assert (second.attempts, second.checkpoint) == (2, {"step": 3})
        assert second.fence.claim > first.fence.claim

    def test_a_holder_whose_job_was_taken_over_can_write_nothing(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [stale] = queue.claim("p1", SHORT, 5)
        fresh = self.take_over(queue, "p2")
        mine = self.change(store, "a1", "ACTIVE", details={"by": "p2"})
        assert queue.save(fresh.fence, mine, None) == mine
        # Every write of the old holder is refused, and changes nothing.
        late = self.change(store, "a1", "ACTIVE", details={"by": "p1"})
        with pytest.raises(JobLost):
            queue.save(stale.fence, late, None)
        with pytest.raises(JobLost):
            queue.checkpoint(stale.fence, b'{"step": 99}')
        done = self.change(store, "a1", "SUCCEEDED", details={"by": "p1"})
        with pytest.raises(JobLost):
            queue.conclude(stale.fence, done, None, keep=False)
        with pytest.raises(JobLost):
            queue.conclude(stale.fence, done, None, keep=True)
        assert not queue.save_tokens(stale.fence, b"stale")
        assert not queue.delete(stale.fence)
        assert queue.heartbeat([stale.fence], LONG) == []
        queue.hand_back([stale.fence])
        found = store.get("a1", time.time())
        assert found is not None and found.action().details == {"by": "p2"}
        # The new holder still holds it, with its checkpoint untouched.
        assert [b.action_id for b in queue.heartbeat([fresh.fence], LONG)] == ["a1"]
        assert queue.claim("p3", LONG, 5) == []
        queue.conclude(fresh.fence, self.change(store, "a1", "SUCCEEDED"), None, False)
        found = store.get("a1", time.time())
        assert found is not None and found.status == "SUCCEEDED"

    def test_a_new_claim_by_the_same_owner_fences_out_its_earlier_one(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [first] = queue.claim("p1", LONG, 5)
        queue.hand_back([first.fence])
        [again] = queue.claim("p1", LONG, 5)
        assert again.attempts == 1  # a hand-back is no attempt
        with pytest.raises(JobLost):
            queue.checkpoint(first.fence, b"1")
        queue.checkpoint(again.fence, b"2")

    def test_a_handed_back_job_is_claimable_at_once(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [held] = queue.claim("p1", LONG, 5)
        queue.hand_back([held.fence])
        [again] = queue.claim("p2", LONG, 5)
        assert again.attempts == 1

    def test_cancel_reaches_the_holder_at_its_heartbeat(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [held] = queue.claim("p1", LONG, 5)
        assert [b.stop for b in queue.heartbeat([held.fence], LONG)] == [False]
        queue.request_cancel("a1")
        assert [b.stop for b in queue.heartbeat([held.fence], LONG)] == [True]
        assert queue.delete(held.fence)
        assert queue.heartbeat([held.fence], LONG) == []

    # -- the outcome ----------------------------------------------------------------

    def test_the_outcome_and_the_rows_end_are_one(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [held] = queue.claim("p1", LONG, 5)
        done = self.change(store, "a1", "SUCCEEDED", details={"n": 1})
        queue.conclude(held.fence, done, None, keep=False)
        assert store.get("a1", time.time()) == done
        assert not queue.delete(held.fence)  # the row went with it
        with pytest.raises(JobLost):
            queue.conclude(held.fence, done, None, keep=False)

    def test_an_outcome_never_changes_an_action_that_ended(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [held] = queue.claim("p1", LONG, 5)
        canceled = self.change(store, "a1", "FAILED", display_status="Canceled")
        assert store.update("a1", canceled, None, time.time()) == canceled
        progress = self.change(store, "a1", "ACTIVE", details={"n": 2})
        assert queue.save(held.fence, progress, None) == canceled
        queue.conclude(held.fence, self.change(store, "a1", "SUCCEEDED"), None, False)
        assert store.get("a1", time.time()) == canceled

    def test_a_job_waiting_inactive_keeps_its_row_and_checkpoint(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [held] = queue.claim("p1", LONG, 5)
        queue.checkpoint(held.fence, b'{"step": 2}')
        waiting = self.change(store, "a1", "INACTIVE")
        queue.conclude(held.fence, waiting, None, keep=True)
        assert store.get("a1", time.time()) == waiting
        assert queue.claim("p2", LONG, 5) == []  # until resumed
        going = self.change(store, "a1", "ACTIVE")
        assert queue.requeue_for("a1", going, OTHER, b"new", None) == going
        [again] = queue.claim("p2", LONG, 5)
        assert (again.caller, again.tokens) == (OTHER, b"new")
        assert (again.checkpoint, again.attempts) == ({"step": 2}, 1)

    # -- resume ---------------------------------------------------------------------

    def test_of_resumes_at_once_exactly_one_wins(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        [held] = queue.claim("p1", LONG, 5)
        waiting = self.change(store, "a1", "INACTIVE")
        assert store.update("a1", waiting, None, time.time()) == waiting
        together = threading.Barrier(8)
        won: list[Stored | None] = [None] * 8

        def resume(k: int) -> None:
            going = self.change(store, "a1", "ACTIVE", details={"by": k})
            together.wait(30)
            won[k] = queue.requeue_for("a1", going, {**OTHER, "k": k}, None, None)

        threads = [threading.Thread(target=resume, args=(k,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [k for k, stored in enumerate(won) if stored is not None]
        assert len(winners) == 1
        found = store.get("a1", time.time())
        assert found is not None and found.action().details == {"by": winners[0]}
        # The holder from before is fenced out; the job runs once, for the winner.
        with pytest.raises(JobLost):
            queue.checkpoint(held.fence, b"1")
        [again] = queue.claim("p2", LONG, 5)
        assert again.caller == {**OTHER, "k": winners[0]}
        assert queue.claim("p3", LONG, 5) == []

    def test_a_resume_without_a_job_row_makes_one(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.put(store, "a1", "INACTIVE")
        going = self.change(store, "a1", "ACTIVE")
        assert queue.requeue_for("a1", going, WHO, None, None) == going
        [claimed] = queue.claim("p1", LONG, 5)
        assert claimed.action_id == "a1"

    def test_only_an_inactive_action_resumes(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "a1")
        going = self.change(store, "a1", "ACTIVE", details={"x": 1})
        assert queue.requeue_for("a1", going, WHO, None, None) is None
        ended = self.change(store, "a1", "SUCCEEDED")
        store.update("a1", ended, None, time.time())
        assert queue.requeue_for("a1", going, WHO, None, None) is None
        assert store.get("a1", time.time()) == ended

    # -- deadlines, the clock and the sweep -----------------------------------------

    def test_the_queue_keeps_time_and_no_method_takes_the_callers(
        self, queue: JobQueue
    ) -> None:
        for name in ("claim", "heartbeat", "enqueue", "due", "sweep", "requeue_for"):
            params = inspect.signature(getattr(queue, name)).parameters
            assert "now" not in params, name
        before = queue.now()
        assert queue.now() >= before
        # The queue's clock is a POSIX time (the database's may differ from
        # this host's by its skew only).
        assert abs(before - time.time()) < 3600

    def test_deadlines_are_due_on_the_queues_clock(
        self, store: Store, queue: JobQueue
    ) -> None:
        now = queue.now()
        for action_id, deadline in (("late", now - 1), ("ok", now + 600)):
            queue.enqueue(action_id, deadline, WHO)
            self.put(store, action_id)
        queue.enqueue("over", now - 1, WHO)
        self.put(store, "over", "SUCCEEDED")
        assert queue.due() == ["late"]
        queue.enqueue("soon", queue.now() + SHORT, WHO)
        self.put(store, "soon", "INACTIVE")
        wait_for(lambda: sorted(queue.due()) == ["late", "soon"], "a deadline came")

    def test_no_resume_past_the_deadline(self, store: Store, queue: JobQueue) -> None:
        queue.enqueue("a1", queue.now() - 1, WHO)
        self.put(store, "a1", "INACTIVE")
        going = self.change(store, "a1", "ACTIVE")
        assert queue.requeue_for("a1", going, WHO, None, None) is None
        found = store.get("a1", time.time())
        assert found is not None and found.status == "INACTIVE"
        assert queue.due() == ["a1"]

    def test_the_sweep_deletes_rows_of_ended_or_never_stored_actions(
        self, store: Store, queue: JobQueue
    ) -> None:
        self.queued(store, queue, "alive")
        queue.enqueue("ended", None, WHO)
        self.put(store, "ended", "SUCCEEDED")
        queue.enqueue("never-stored", None, WHO)
        assert queue.sweep(grace=600) == 0
        wait_for(lambda: queue.sweep(grace=0) == 2, "the sweep deleted two rows")
        assert [c.action_id for c in queue.claim("p", LONG, 9)] == ["alive"]

    def test_two_providers_on_one_store_never_share_jobs(
        self, make_store: Store
    ) -> None:
        one = make_store.for_provider(f"{SCOPE} /one")
        two = make_store.for_provider(f"{SCOPE} /two")
        one_queue, two_queue = one.jobs(), two.jobs()
        assert one_queue is not None and two_queue is not None
        self.queued(one, one_queue, "a1")
        assert two_queue.claim("p", LONG, 5) == []
        assert two_queue.due() == []
        [claimed] = one_queue.claim("p", LONG, 5)
        assert claimed.action_id == "a1"
