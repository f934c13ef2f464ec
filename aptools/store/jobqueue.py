"""The job queue contract: the store's table of background jobs.

The action *is* the job. A job row sits beside the action in the same
database and says who runs it (``owner``) until when (``lease_until``),
how often it was claimed (``attempts``), its last checkpoint, its deadline
and whether cancellation was asked for. A process claims rows whose lease
ran out, renews its leases with a heartbeat, and ends a job by storing its
outcome and deleting its row in one transaction.

**The queue's clock.** Leases, take-overs, deadlines and the sweep are
compared on one clock, the queue's (:meth:`JobQueue.now`): the database's
on a store that several hosts share (PostgreSQL), the host's on a store of
one host (SQLite, memory). No method takes the caller's time, so a host
whose clock is off can neither take over live jobs nor keep a dead one.

**Fencing.** Each claim hands out a :class:`Fence`: the job's ``owner``
and ``claim``, a number the row counts up at every claim and every resume
and never counts down. Every write of a claimed job — :meth:`~JobQueue.save`
(progress), :meth:`~JobQueue.checkpoint`, :meth:`~JobQueue.save_tokens`,
:meth:`~JobQueue.conclude` (the outcome and the row's deletion, one
transaction; :meth:`~JobQueue.conclude_and_claim` claims the next jobs in
it too), :meth:`~JobQueue.delete`, :meth:`~JobQueue.hand_back`,
:meth:`~JobQueue.interrupt` and :meth:`~JobQueue.heartbeat` — carries its
fence in the statement's condition and changes nothing once the row moved
on (taken over after the lease ran out, handed to a resuming caller,
deleted). Such a write raises :class:`~aptools.JobLost` (``save_tokens``,
``delete``, ``hand_back``, ``interrupt`` and ``heartbeat`` say it by their
answer instead), so the holder learns at its next write that it must stop.

**Resume** (:meth:`~JobQueue.requeue_for`) is one compare-and-set: the
action INACTIVE becomes ACTIVE and the row is handed to the resuming caller
(its claim counted up, fencing out any holder) in one transaction, or
nothing happens. Of any number of resumes at once exactly one wins.

A row is enqueued *before* the action's first state is stored, and is only
claimable while its action is stored ACTIVE: a process that dies between
the two leaves a row without an action, which :meth:`JobQueue.sweep`
deletes; an accepted action always has its row. Times are POSIX timestamps
in seconds. Prove a queue with
:class:`aptools.testing.queue_contract.JobQueueContract`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aptools.errors import JobLost

if TYPE_CHECKING:
    from aptools.store.records import Stored

__all__ = ["Beat", "Claimed", "Fence", "JobLost", "JobQueue", "JobRow", "lost"]


@dataclass(slots=True, frozen=True)
class Fence:
    """The fencing token of one claim of a job: what every write of the
    claimed job carries, and what the store checks before it writes.

    ``owner`` is the claiming process (unique per process and start),
    ``claim`` the row's claim count at this claim (it only grows, so a later
    claim by the same owner fences out an earlier one too).
    """

    action_id: str
    owner: str
    claim: int


@dataclass(slots=True, frozen=True)
class Claimed:
    """A job just claimed: run it.

    ``attempts`` counts claims, this one included, minus hand-backs: more than
    1 means an earlier holder died with it. ``checkpoint`` is the last state
    saved with :meth:`JobQueue.checkpoint` (``None`` if none), ``caller`` the
    identity record stored at :meth:`JobQueue.enqueue`, ``tokens`` its
    encrypted refresh tokens (or ``None``), ``fence`` the claim's token.
    ``stored`` is the job's action as the claim read it, when the queue reads
    it in the same statement (else ``None``: the runner reads it itself).
    """

    action_id: str
    attempts: int
    checkpoint: Any
    caller: Mapping[str, Any]
    tokens: bytes | None
    fence: Fence
    stored: Stored | None = None


@dataclass(slots=True, frozen=True)
class Beat:
    """A renewed lease: ``stop`` is True once cancellation was asked for."""

    action_id: str
    stop: bool


@dataclass(slots=True, frozen=True)
class JobRow:
    """One job row as it is stored, for the job console
    (:mod:`aptools.jobs.console`).

    Times are POSIX seconds on the queue's clock: ``enqueued_at``,
    ``deadline`` (or ``None``) and ``lease_until`` (0 when no process holds
    it). ``owner`` is the claiming process (``host:pid:start``) of the last
    claim, or ``None``; ``caller`` the identity record kept with the job
    (no tokens); ``attempts`` and ``claims`` as :class:`Claimed` and
    :class:`Fence` count them.
    """

    action_id: str
    enqueued_at: float
    deadline: float | None
    caller: Mapping[str, Any]
    owner: str | None
    lease_until: float
    attempts: int
    claims: int
    cancel_requested: bool


class JobQueue(abc.ABC):
    """Background jobs of one provider (one store namespace).

    Every method is one atomic statement or transaction of the store, so
    any number of processes and hosts sharing the store may call them at once.
    """

    #: Whether a runner's job threads claim their next job as they end one
    #: (:meth:`conclude_and_claim`); False: the runner's thread claims for
    #: all of them after each end (:meth:`claim`).
    claim_at_end: bool = True

    @abc.abstractmethod
    def now(self) -> float:
        """The queue's clock (POSIX seconds): the database's where hosts
        share it, else this host's. Leases and deadlines are on it."""

    @abc.abstractmethod
    def enqueue(
        self,
        action_id: str,
        deadline: float | None,
        caller: Mapping[str, Any],
        tokens: bytes | None = None,
    ) -> None:
        """Add a job for ``action_id``: claimable at once, once its action is
        stored ACTIVE. ``deadline`` (a timestamp or ``None``) is when it must
        have ended; ``caller`` an identity record (no tokens); ``tokens`` the
        encrypted refresh tokens of the caller, if any."""

    @abc.abstractmethod
    def claim(self, owner: str, lease: float, limit: int) -> list[Claimed]:
        """Take at most ``limit`` jobs whose lease ran out (or never began)
        and whose action is ACTIVE, for ``owner`` until the queue's
        :meth:`now` plus ``lease`` seconds. Each gets a new :class:`Fence`."""

    @abc.abstractmethod
    def heartbeat(self, fences: Collection[Fence], lease: float) -> list[Beat]:
        """Renew the leases of the jobs still held by ``fences`` (until
        :meth:`now` plus ``lease``); the jobs missing from the answer are no
        longer held (taken over, resumed or deleted)."""

    @abc.abstractmethod
    def hand_back(self, fences: Collection[Fence]) -> None:
        """Hand jobs still held by ``fences`` back at once (shutting down):
        claimable again now, and the claim does not count as an attempt."""

    @abc.abstractmethod
    def interrupt(self, fences: Collection[Fence]) -> None:
        """Hand back jobs still held by ``fences`` whose holder is stopping
        while they run (SIGTERM): claimable again at once, and, unlike
        :meth:`hand_back`, the claim counts as an attempt, as a take-over
        after a crash does — so a job that ends every process running it
        stays bounded (see ``max_attempts``). A job no longer held by its
        fence is left as it is."""

    @abc.abstractmethod
    def requeue_for(
        self,
        action_id: str,
        stored: Stored,
        caller: Mapping[str, Any],
        tokens: bytes | None,
        deadline: float | None,
    ) -> Stored | None:
        """Resume a waiting job, as one compare-and-set: if the action is
        stored INACTIVE and its job's deadline has not passed (by :meth:`now`),
        store ``stored`` (its state going on, ACTIVE) and hand the job to a
        new caller — claimable at once with this ``caller`` record and
        ``tokens`` (replacing the old ones), its checkpoint kept, its claim
        counted up so that an earlier holder is fenced out. Without a job row
        one is made, with ``deadline``. Returns ``stored``; ``None`` when
        nothing changed (the action was not INACTIVE — another resume won,
        or it ended — or its job's deadline passed)."""

    @abc.abstractmethod
    def save(
        self, fence: Fence, stored: Stored, expires_at: float | None
    ) -> Stored | None:
        """The holder's write of its action (progress): store ``stored`` if
        the job is still held by ``fence`` and the action is not terminal.
        Returns what is stored afterwards (the terminal action, unchanged,
        if it ended meanwhile; ``None`` if it is gone). Raises
        :class:`~aptools.JobLost` if the job is no longer held by ``fence``."""

    @abc.abstractmethod
    def conclude(
        self, fence: Fence, stored: Stored, expires_at: float | None, keep: bool
    ) -> None:
        """Store a job's outcome and end its claim, in one transaction: the
        action becomes ``stored`` (unless it is terminal already) and the row
        is deleted — or, with ``keep`` (the action waits INACTIVE for its
        caller), handed back without counting the attempt. Raises
        :class:`~aptools.JobLost`, changing nothing, if the job is no longer
        held by ``fence``."""

    def conclude_and_claim(
        self,
        fence: Fence,
        stored: Stored,
        expires_at: float | None,
        keep: bool,
        owner: str,
        lease: float,
        limit: int,
        per_caller: int | None = None,
    ) -> list[Claimed]:
        """:meth:`conclude`, then, in the same transaction, claim up to
        ``limit`` more jobs for ``owner`` as :meth:`claim` does (as
        :meth:`claim_fair` does with ``per_caller``): a runner's job thread
        that ends its job takes the next so, at one transaction per job. The
        ended job is never among those claimed. Raises
        :class:`~aptools.JobLost`, changing nothing and claiming nothing, if
        the job is no longer held by ``fence``.

        The default runs :meth:`conclude`, then :meth:`claim` (or
        :meth:`claim_fair`): two transactions, the same outcome."""
        self.conclude(fence, stored, expires_at, keep)
        if per_caller is None:
            return self.claim(owner, lease, limit)
        return self.claim_fair(owner, lease, limit, per_caller)

    @abc.abstractmethod
    def delete(self, fence: Fence) -> bool:
        """Delete the row of a job still held by ``fence`` (it ended with its
        action already final: canceled, past its deadline); False if it is
        no longer held."""

    @abc.abstractmethod
    def request_cancel(self, action_id: str) -> None:
        """Ask the job to stop; its holder learns it at the next heartbeat."""

    @abc.abstractmethod
    def checkpoint(self, fence: Fence, state: bytes) -> None:
        """Save ``state`` (JSON bytes) for a take-over. Raises
        :class:`~aptools.JobLost` if the job is no longer held by ``fence``."""

    @abc.abstractmethod
    def save_tokens(self, fence: Fence, tokens: bytes) -> bool:
        """Keep ``tokens`` (encrypted refresh tokens) with the job; False if
        it is no longer held by ``fence`` or its action ended. They go when
        the action ends or goes, in the same transaction as that change (the
        store's :meth:`~aptools.store.Store.update`, ``delete`` and ``purge``,
        and :meth:`conclude`)."""

    def kept_tokens(self) -> dict[str, bytes]:
        """Every job's kept tokens (encrypted), by action id (for a re-key)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list kept tokens")

    def replace_tokens(self, action_id: str, old: bytes, new: bytes) -> bool:
        """Replace a job's kept tokens ``old`` by ``new`` (the same tokens
        sealed with another key), as one compare-and-set, unfenced (an
        operator's re-key, not a holder's write); False if they changed
        meanwhile or the action ended (its tokens are never brought back)."""
        raise NotImplementedError(f"{type(self).__name__} cannot re-key tokens")

    @abc.abstractmethod
    def due(self) -> list[str]:
        """Jobs (queued, running or waiting) whose deadline passed by
        :meth:`now` and whose action is still ACTIVE or INACTIVE."""

    @abc.abstractmethod
    def sweep(self, grace: float) -> int:
        """Delete rows not held by a live lease whose action ended or was never
        stored (enqueued more than ``grace`` seconds before :meth:`now`);
        return how many."""

    def rows(self) -> list[JobRow]:
        """Every job row of this provider, oldest first (the job console's
        listing). Raises :class:`NotImplementedError` on a queue without it."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its jobs")

    def take(self, action_id: str, owner: str, lease: float) -> Fence | None:
        """Take ``action_id``'s job from whichever process holds it, for
        ``owner`` until :meth:`now` plus ``lease`` seconds (the operator's
        requeue: it writes the action's log under this fence, then hands the
        job back with :meth:`hand_back`): its claim is counted up, so that
        the old holder's every write is refused from then on, and no other
        process can claim it meanwhile. Returns the new fence; ``None`` when
        there is no such job. Raises :class:`NotImplementedError` on a queue
        without it."""
        raise NotImplementedError(f"{type(self).__name__} cannot take a job")

    def claim_fair(
        self, owner: str, lease: float, limit: int, per_caller: int
    ) -> list[Claimed]:
        """:meth:`claim`, taking no job of a caller (the ``identity_id`` of
        its caller record) who already has ``per_caller`` jobs held by live
        leases, in any process on any host: one atomic step, so claimers at
        once never take a caller past the cap. A caller's jobs beyond it
        stay queued, in order, and other callers' jobs are claimed past
        them. Raises :class:`NotImplementedError` on a queue without it."""
        raise NotImplementedError(f"{type(self).__name__} has no fair share")

    def ahead(self, identity_id: str) -> int:
        """How many of ``identity_id``'s jobs are unfinished and not waiting
        (queued or running, their action ACTIVE): the jobs ahead of one it
        enqueues now. 0 on a queue that cannot tell (the default)."""
        return 0

    def ahead_of(self, action_id: str) -> int | None:
        """How many jobs of ``action_id``'s caller (the ``identity_id`` of
        its caller record) are ahead of it while it waits its turn: those
        running (held by a live lease) and those queued that a claim takes
        before it (by lease, then by enqueue order, as :meth:`claim_fair`
        does), their actions ACTIVE. Read on the queue's clock, so every
        process and host sharing the store gives the same answer.

        ``None`` when the job is not waiting its turn: running, ended,
        waiting INACTIVE, asked to stop, or unknown. Raises
        :class:`NotImplementedError` on a queue without it."""
        raise NotImplementedError(f"{type(self).__name__} cannot place a job")

    def keep_trace(self, action_id: str, traceparent: str) -> None:  # noqa: B027
        """Keep ``traceparent`` (the W3C trace context of the run request
        that queued the job) with ``action_id``'s job, for the process that
        runs it (:meth:`origin`). The default keeps nothing."""

    def origin(self, action_id: str) -> tuple[str | None, float] | None:
        """The kept ``traceparent`` (or ``None``) of ``action_id``'s job and
        when it was enqueued (on the queue's clock); ``None`` when there is
        no such job or the queue keeps neither (the default)."""
        return None

    def counts(self) -> dict[str, int]:
        """How many unfinished jobs are ``queued``, ``running`` (held by a
        live lease) and ``waiting`` (their action INACTIVE), by the queue's
        clock: the job metrics' gauges. The default knows none (empty)."""
        return {}

    def announce(self) -> None:  # noqa: B027 - optional hook
        """Tell the runners of other processes and hosts that a job became
        claimable (called once its action is stored ACTIVE). The default says
        nothing: they find it at their next poll (``job_poll_interval``)."""

    def listen(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``wake()`` (from a thread of the queue's) whenever any process
        :meth:`announce` s a job of this queue, until the returned function is
        called. ``None`` (the default): the queue cannot wake its runners;
        they poll. A listener that loses its connection keeps trying to get
        it back; meanwhile the runner's poll finds the jobs."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the queue holds; the default holds nothing."""


def lost(fence: Fence) -> JobLost:
    """The error a refused write of ``fence``'s job raises."""
    return JobLost(
        f"job {fence.action_id}: this process no longer holds it (taken over"
        " after its lease ran out, resumed, or handed back)"
    )
