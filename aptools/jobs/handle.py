"""``Job``: what a running job function reports through."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from aptools.models import Action, LogEntry, isoformat
from aptools.store import Stored
from aptools.vocabulary import TERMINAL

if TYPE_CHECKING:
    from aptools.store import Store
    from aptools.store.jobqueue import JobQueue

__all__ = ["LOG_KEY", "LOG_LIMIT", "Job", "JobCanceled"]

#: Where an action's job log lives in its private ``state``.
LOG_KEY: Final = "aptools.log"
#: How many log entries an action keeps (the oldest go first).
LOG_LIMIT: Final = 1000


class JobCanceled(Exception):
    """Raised by :meth:`Job.raise_if_canceled`: the job must stop.

    Let it propagate; the action already holds its final state (FAILED,
    canceled or past its deadline) and what the job returns is discarded.
    """


class Job:
    """The handle a job function receives: progress, checkpoints, cancellation.

    Every method writes through the store at once, so status answers the
    new state from any worker process or host::

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
        store: Store,
        queue: JobQueue,
        owner: str,
        checkpoint: Any,
        attempt: int,
        retry: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> None:
        self._action = action
        self._store = store
        self._queue = queue
        self._owner = owner
        self._checkpoint = checkpoint
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._lost = False
        self._on_cancel: Callable[[], None] | None = None
        # How a write rides out a store outage (the runner's: while the lease
        # holds, see aptools.jobs.outage); by default, once.
        self._retry: Callable[[Callable[[], Any]], Any] = retry or _once
        #: When (time.monotonic) the job was told to stop, or None.
        self.stopped_at: float | None = None
        #: How many times this job was started (1 the first time; more after
        #: a take-over from a process that died).
        self.attempt = attempt

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
        """True once the job must stop: canceled, past its deadline, or handed
        back. Refreshed by each heartbeat and each :meth:`progress`."""
        return self._stop.is_set()

    def raise_if_canceled(self) -> None:
        """Raise :class:`JobCanceled` if :attr:`canceled`."""
        if self._stop.is_set():
            raise JobCanceled(self.action_id)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early when the job must stop;
        True if it must stop (for ``def`` jobs, instead of ``time.sleep``)."""
        return self._stop.wait(seconds)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` for ``async def`` jobs (a cancel cancels it)."""
        await asyncio.sleep(seconds)

    # -- reports --------------------------------------------------------------

    def progress(
        self,
        details: Mapping[str, Any] | None = None,
        display_status: str | None = None,
        log: LogEntry | Mapping[str, Any] | None = None,
    ) -> None:
        """Store new ``details`` and/or ``display_status`` (at most 64
        characters) and append one ``log`` entry (a :class:`LogEntry` or a
        mapping with ``code`` and ``description``; ``time`` defaults to now):
        one write. The log keeps the last :data:`LOG_LIMIT` entries.

        After the action ended (canceled, deadline) nothing changes and
        :attr:`canceled` turns True. A store outage is ridden out while the
        lease holds; past it, raises :class:`~aptools.StoreUnavailable` (let
        it propagate: the job is taken over from its last checkpoint).
        """
        with self._lock:
            if self._lost:
                return
            action = self._action
            if details is not None:
                action.details = dict(details)
            if display_status is not None:
                action.display_status = display_status[:64]
            if log is not None:
                entries = list(action.state.get(LOG_KEY, ()))
                entries.append(_entry(log))
                action.state[LOG_KEY] = entries[-LOG_LIMIT:]
            stored = self._retry(
                lambda: self._store.update(
                    action.action_id, Stored.of(action), None, time.time()
                )
            )
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
        :attr:`checkpoint`. One write; a store outage as for
        :meth:`progress`."""
        data = orjson.dumps(state)
        with self._lock:
            if self._lost:
                return
            if self._retry(
                lambda: self._queue.checkpoint(self._owner, self.action_id, data)
            ):
                self._checkpoint = orjson.loads(data)
                return
        self.lose()

    # -- the runner's side ------------------------------------------------------

    def stop(self) -> None:
        """Tell the job to stop (cancel, deadline)."""
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        self._stop.set()
        hook = self._on_cancel
        if hook is not None:
            hook()

    def lose(self) -> None:
        """This process no longer holds the job: stop it and ignore what it
        reports from now on."""
        with self._lock:
            self._lost = True
        self.stop()

    @property
    def lost(self) -> bool:
        return self._lost


def _once(call: Callable[[], Any]) -> Any:
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
