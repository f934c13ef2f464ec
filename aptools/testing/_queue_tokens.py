"""The job-queue contract's tests of kept tokens (part of
:class:`aptools.testing.queue_contract.JobQueueContract`).

A job's kept tokens (its caller's refresh tokens, sealed) are written only by
the job's holder, through its fence, and only while its action is alive; they
go in the same transaction as the action's end (the store's ``update`` to a
final status, ``delete``, ``purge``, and :meth:`~aptools.jobs.JobQueue.conclude`);
a re-key (:meth:`~aptools.jobs.JobQueue.replace_tokens`, unfenced) is a
compare-and-set that never brings back the tokens of an action that ended.
"""

from __future__ import annotations

import time

import pytest

from aptools.store import Store
from aptools.store.jobqueue import JobQueue
from aptools.testing._queue_parts import LONG, SCOPE, SHORT, WHO, QueueFixtures

__all__ = ["KeptTokensContract"]


def _kept(queue: JobQueue) -> dict[str, bytes]:
    try:
        return queue.kept_tokens()
    except NotImplementedError:
        pytest.skip(f"{type(queue).__name__} cannot list kept tokens (no re-key)")


class KeptTokensContract(QueueFixtures):
    """Tests of a queue's kept tokens; override the ``make_store`` fixture."""

    def test_only_the_holder_writes_tokens_and_a_take_over_reads_them(
        self, store: Store, queue: JobQueue
    ) -> None:
        queue.enqueue("a1", None, WHO, b"first")
        self.put(store, "a1")
        [stale] = queue.claim("p1", SHORT, 5)
        assert queue.save_tokens(stale.fence, b"rotated")
        fresh = self.take_over(queue, "p2")
        assert fresh.tokens == b"rotated"
        # The holder taken over can no longer replace them.
        assert not queue.save_tokens(stale.fence, b"stale")
        assert queue.save_tokens(fresh.fence, b"rotated-again")
        assert _kept(queue) == {"a1": b"rotated-again"}

    def test_tokens_go_with_the_actions_end_and_never_come_back(
        self, store: Store, queue: JobQueue
    ) -> None:
        for action_id in ("canceled", "released", "concluded"):
            queue.enqueue(action_id, None, WHO, b"sealed-" + action_id.encode())
            self.put(store, action_id)
        held = {c.action_id: c for c in queue.claim("p1", LONG, 5)}
        assert sorted(_kept(queue)) == ["canceled", "concluded", "released"]
        # Canceled: the store's update to a final status takes them along.
        ended = self.change(store, "canceled", "FAILED", display_status="Canceled")
        store.update("canceled", ended, None, time.time())
        # A holder still holding the row cannot write them back, nor a re-key.
        assert not queue.save_tokens(held["canceled"].fence, b"late")
        assert not queue.replace_tokens("canceled", b"sealed-canceled", b"new")
        # Released: the action's deletion takes them along.
        store.update(
            "released", self.change(store, "released", "SUCCEEDED"), None, time.time()
        )
        store.delete("released")
        # Concluded: the row goes with the outcome.
        done = self.change(store, "concluded", "SUCCEEDED")
        queue.conclude(held["concluded"].fence, done, None, keep=False)
        assert _kept(queue) == {}

    def test_tokens_go_when_an_expired_action_is_purged(
        self, store: Store, queue: JobQueue
    ) -> None:
        queue.enqueue("a1", None, WHO, b"sealed")
        self.put(store, "a1")
        now = time.time()
        done = self.change(store, "a1", "SUCCEEDED")
        store.update("a1", done, now + 0.5, now)
        queue.enqueue("a1", None, WHO, b"sealed")  # as if left behind
        assert store.purge(now + 1) == 1
        assert _kept(queue) == {}

    def test_a_rekey_is_a_compare_and_set_on_the_tokens(
        self, store: Store, queue: JobQueue
    ) -> None:
        queue.enqueue("a1", None, WHO, b"old")
        self.put(store, "a1")
        assert _kept(queue) == {"a1": b"old"}
        assert not queue.replace_tokens("a1", b"other", b"new")
        assert queue.replace_tokens("a1", b"old", b"new")
        assert not queue.replace_tokens("a1", b"old", b"newer")  # changed meanwhile
        [claimed] = queue.claim("p1", LONG, 5)
        assert claimed.tokens == b"new"
        # A waiting action's tokens are re-keyed too.
        waiting = self.change(store, "a1", "INACTIVE")
        queue.conclude(claimed.fence, waiting, None, keep=True)
        assert queue.replace_tokens("a1", b"new", b"newest")
        assert _kept(queue) == {"a1": b"newest"}

    def test_kept_tokens_are_the_namespaces_own(self, make_store: Store) -> None:
        one = make_store.for_provider(f"{SCOPE} /one")
        two = make_store.for_provider(f"{SCOPE} /two")
        one_queue, two_queue = one.jobs(), two.jobs()
        assert one_queue is not None and two_queue is not None
        one_queue.enqueue("a1", None, WHO, b"one")
        self.put(one, "a1")
        two_queue.enqueue("b1", None, WHO, None)
        self.put(two, "b1")
        assert _kept(one_queue) == {"a1": b"one"}
        assert _kept(two_queue) == {}
        assert not two_queue.replace_tokens("a1", b"one", b"two")
