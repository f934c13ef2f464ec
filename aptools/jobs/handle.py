"""``Job``: what a running job function reports through."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import orjson

from aptools.errors import JobCanceled, JobLost
from aptools.models import Action, Details, LogEntry, details_of, isoformat
from aptools.store import Stored
from aptools.vocabulary import TERMINAL

if TYPE_CHECKING:
    from aptools.store.jobqueue import Fence, JobQueue

__all__ = ["LOG_KEY", "LOG_LIMIT", "Job", "JobCanceled", "JobLost", "Retry"]

T = TypeVar("T")


class Retry(Protocol):
    """How a job's write is tried: ``retry(call, until)`` calls ``call()``,
    perhaps again while the store is unavailable and ``until()`` (a
    :func:`time.monotonic` instant, when the lease may run out) is ahead
    (see :func:`aptools.jobs.outage.ride_out`)."""

    def __call__(self, call: Callable[[], T], until: Callable[[], float], /) -> T: ...


#: Where an action's job log lives in its private ``state``.
LOG_KEY: Final = "aptools.log"
#: How many log entries an action keeps (the oldest go first).
LOG_LIMIT: Final = 1000


class Job:
    """The handle a job function receives: progress, checkpoints, cancellation.

    Every method writes through the store at once, so status answers the
    new state from any worker process or host. Every write carries this
    claim's fencing token: once another process took the job over (this one
    was frozen or cut off from the store past its lease), the write is
    refused and raises :class:`~aptools.JobLost`, and :attr:`lost` turns
    True — stop there, before the next step::

        @provider.job
        def work(action: Action, caller: Caller, job: Job) -> dict[str, int]:
            done = job.checkpoint or 0
            for step in range(done, 10):
                job.raise_if_canceled()
                do(step)
                job.save_checkpoint(step + 1)
                job.progress({"done": step + 1}, log={"code": "StepDone",
                             "description": f"step {step + 1} done"})
            return {"done": 10}
    """

    def __init__(
        self,
        *,
        action: Action,
        queue: JobQueue,
        fence: Fence,
        checkpoint: Any,
        attempt: int,
        lease: float = 30.0,
        claimed_at: float | None = None,
        retry: Retry | None = None,
    ) -> None:
        self._action = action
        self._queue = queue
        #: The claim's fencing token (see :class:`aptools.store.jobqueue.Fence`).
        self.fence = fence
        self._checkpoint = checkpoint
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._lost = False
        self._on_cancel: Callable[[], None] | None = None
        # How a write rides out a store outage (the runner's: while the lease
        # holds, see aptools.jobs.outage); by default, once.
        self._retry: Retry = retry or _once
        #: When (time.monotonic) the job was told to stop, or None.
        self.stopped_at: float | None = None
        #: How many times this job has been claimed, this run included: 1 the
        #: first time, 2 or more after a process that ran it ended (a
        #: take-over after a crash or a lease that ran out, a hand-back at
        #: SIGTERM). A resume after consent does not count. Once the job's
        #: ``max_attempts`` (default 10) processes ended while running it,
        #: the action ends FAILED ("Interrupted") without running it again;
        #: a job that is not resumable is never started twice. An ``int``.
        self.attempt = attempt
        self._lease = lease
        # Until when (time.monotonic) the lease surely holds: a lease after
        # the claim, or the last renewing heartbeat, was sent.
        sent = time.monotonic() if claimed_at is None else claimed_at
        self._held_until = sent + lease

    @property
    def action_id(self) -> str:
        return self._action.action_id

    @property
    def action(self) -> Action:
        """The action as this job last saved it (a private copy)."""
        return self._action

    # -- cancellation ----------------------------------------------------------

    @property
    def canceled(self) -> bool:
        """True once the job must stop: canceled, past its deadline, handed
        back, or no longer held (:attr:`lost`). Refreshed by each heartbeat and
        each :meth:`progress`; when the lease was not renewed lately (this
        process was frozen, or cut off from the store), asks the store first."""
        return self._stop.is_set() or not self._holds()

    def raise_if_canceled(self) -> None:
        """Raise :class:`JobCanceled` if :attr:`canceled` (:class:`JobLost`,
        its subclass, if the job is no longer held)."""
        if self.canceled:
            if self._lost:
                raise JobLost(self.action_id)
            raise JobCanceled(self.action_id)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early when the job must stop;
        True if it must stop (for ``def`` jobs, instead of ``time.sleep``).
        Like :attr:`canceled`, it makes sure the job is still held before it
        answers False, so a process continued after a freeze longer than the
        lease learns here that the job was taken over."""
        return self._stop.wait(seconds) or not self._holds()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` for ``async def`` jobs (a cancel cancels it).
        Raises :class:`JobLost` if, afterwards, the job is no longer held."""
        await asyncio.sleep(seconds)
        if not self._holds():
            raise JobLost(self.action_id)

    def _holds(self) -> bool:
        """Whether this process still holds the job. Known locally while the
        last renewal is recent (heartbeats come every third of a lease); when
        a third of the lease or less is left, asked of the store (a fenced
        renewal), and the job is lost if the store refuses or cannot say."""
        if self._lost:
            return False
        if time.monotonic() < self._held_until - self._lease / 3:
            return True
        sent = time.monotonic()
        try:
            beats = self._queue.heartbeat([self.fence], self._lease)
        except Exception:
            beats = None
            if time.monotonic() < self._held_until:
                return True  # the store is out of reach; the lease still runs
        if not beats:
            self.lose()
            return False
        self.renewed(sent, stop=beats[0].stop)
        return True

    # -- reports --------------------------------------------------------------

    def progress(
        self,
        details: Details = None,
        display_status: str | None = None,
        log: LogEntry | Mapping[str, Any] | None = None,
    ) -> None:
        """Store new ``details`` (a dict, or a message string stored as
        ``{"message": text}``) and/or ``display_status`` (at most 64
        characters) and append one ``log`` entry (a :class:`LogEntry` or a
        mapping with ``code`` and ``description``; ``time`` defaults to now):
        one write. The log keeps the last :data:`LOG_LIMIT` entries.

        After the action ended (canceled, deadline) nothing changes and
        :attr:`canceled` turns True. Raises :class:`~aptools.JobLost`, writing
        nothing, once the job was taken over. A store outage is ridden out
        while the lease holds; past it, raises :class:`~aptools.StoreUnavailable`
        (let it propagate: the job is taken over from its last checkpoint).
        """
        with self._lock:
            if self._lost:
                raise JobLost(self.action_id)
            action = self._action
            if details is not None:
                action.details = details_of(details)
            if display_status is not None:
                action.display_status = display_status[:64]
            if log is not None:
                entries = list(action.state.get(LOG_KEY, ()))
                entries.append(_entry(log))
                action.state[LOG_KEY] = entries[-LOG_LIMIT:]
            try:
                stored = self._retry(
                    lambda: self._queue.save(self.fence, Stored.of(action), None),
                    self.held_until,
                )
            except JobLost:
                self._lost = True
                self.stop()
                raise
        if stored is None or stored.status in TERMINAL:
            self.stop()

    @property
    def checkpoint(self) -> Any:
        """The last state saved with :meth:`save_checkpoint` (by this run or
        one before a take-over), or ``None``."""
        return self._checkpoint

    def save_checkpoint(self, state: Any) -> None:
        """Save ``state`` (anything JSON can hold) for a take-over: a
        resumable job started again after a crash finds it in
        :attr:`checkpoint`. One write. Raises :class:`~aptools.JobLost`,
        saving nothing, once the job was taken over; a store outage as for
        :meth:`progress`."""
        data = orjson.dumps(state)
        with self._lock:
            if self._lost:
                raise JobLost(self.action_id)
            try:
                self._retry(
                    lambda: self._queue.checkpoint(self.fence, data), self.held_until
                )
            except JobLost:
                self._lost = True
                self.stop()
                raise
            self._checkpoint = orjson.loads(data)

    # -- the runner's side ------------------------------------------------------

    def stop(self) -> None:
        """Tell the job to stop (cancel, deadline)."""
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        self._stop.set()
        hook = self._on_cancel
        if hook is not None:
            hook()

    def held_until(self) -> float:
        """Until when (:func:`time.monotonic`) the lease surely holds: a lease
        after the claim, or after the last renewing heartbeat, was sent."""
        return self._held_until

    def renewed(self, sent: float, stop: bool = False) -> None:
        """The lease was renewed by a heartbeat sent at ``sent``
        (``time.monotonic``); ``stop``: cancellation was asked for."""
        self._held_until = max(self._held_until, sent + self._lease)
        if stop:
            self.stop()

    @property
    def stopping(self) -> bool:
        """True once the job was told to stop (canceled, past its deadline,
        handed back or lost); unlike :attr:`canceled`, asks no store."""
        return self._stop.is_set()

    def lose(self) -> None:
        """This process no longer holds the job: stop it and ignore what it
        reports from now on."""
        with self._lock:
            self._lost = True
        self.stop()

    @property
    def lost(self) -> bool:
        """True once this process no longer holds the job (taken over after
        its lease ran out, or handed back): every write is refused from then
        on, and what the job returns is discarded."""
        return self._lost


def _once(call: Callable[[], T], until: Callable[[], float]) -> T:
    return call()


def _entry(log: LogEntry | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(log, LogEntry):
        return log.to_public()
    entry = {"time": isoformat(time.time()), **log}
    if not isinstance(entry.get("code"), str) or not isinstance(
        entry.get("description"), str
    ):
        raise TypeError("a log entry needs a string 'code' and 'description'")
    return entry
