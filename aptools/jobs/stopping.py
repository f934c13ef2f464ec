"""How a runner stops, and what SIGTERM does to its jobs.

At SIGTERM (:meth:`Stopping.terminate`, through :mod:`aptools.signals`) the
runner claims no more; a resumable job is handed back at once (the claim
counts as an attempt, :meth:`JobQueue.interrupt`), for another process to
take over from its checkpoint without waiting for its lease; a job that is
not resumable goes on, its lease renewed, for at most ``stop_timeout``
seconds. At exit (:meth:`Stopping.stop`) one still running then ends FAILED
("Interrupted"): it is never started twice.

Also here: which running jobs count against ``max_jobs`` (not those told to
stop: a canceled job that never returns frees its slot, and is logged).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Final

from aptools.actions import INTERRUPTED, expiry, finish_fields
from aptools.errors import ActionFailed, JobLost
from aptools.store import Stored
from aptools.vocabulary import FAILED

if TYPE_CHECKING:
    from aptools.jobs.handle import Job
    from aptools.jobs.settings import Engine, JobSettings

__all__ = [
    "STUCK_EVERY",
    "Stopping",
    "interrupted",
    "live",
    "stop_all",
    "terminate_all",
    "unstorable",
]

log = logging.getLogger("aptools.jobs")

#: How often (seconds) a job told to stop that has not returned is logged.
STUCK_EVERY: Final = 60.0


class Stopping:
    """The stopping half of a :class:`~aptools.jobs.runner.Runner`."""

    engine: Engine
    owner: str
    _settings: JobSettings
    _running: dict[str, Job]
    _lock: threading.Lock
    _idle: threading.Condition
    _wake: threading.Event
    _stopping: bool
    _draining: bool
    _drain_until: float
    _stuck_said: dict[str, float]
    _thread: threading.Thread | None
    _loop: asyncio.AbstractEventLoop | None

    def terminate(self) -> None:
        """What SIGTERM does (never blocks): claim no more jobs; hand the
        running jobs back at once when they are resumable (the claim counts
        as an attempt); let the others go on for ``stop_timeout`` seconds."""
        with self._lock:
            if self._draining:
                return
            self._draining = True
            self._drain_until = time.monotonic() + self._settings.stop_timeout
            held = list(self._running.values()) if self._settings.resumable else []
        self._interrupt(held)

    def stop(self) -> None:
        """Stop this runner: :meth:`terminate`, then wait for the jobs that
        are not resumable until ``stop_timeout`` seconds after it; those still
        running end FAILED ("Interrupted"). Blocks at most that long."""
        if self._stopping:
            return
        self.terminate()
        with self._lock:
            while self._running and not self._settings.resumable:
                left = self._drain_until - time.monotonic()
                if left <= 0 or not self._idle.wait(left):
                    break
            held = list(self._running.values())
        self._stopping = True
        self._wake.set()
        if self._settings.resumable:
            self._interrupt(held)  # claimed meanwhile, if any
        else:
            for job in held:
                self._end_interrupted(job)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _interrupt(self, held: list[Job]) -> None:
        for job in held:
            job.lose()
        if held:
            try:
                self.engine.queue.interrupt([j.fence for j in held])
            except Exception:
                log.exception("could not hand back %d jobs", len(held))
            else:
                log.info("handed back %d running jobs", len(held))

    def _end_interrupted(self, job: Job) -> None:
        """A job that is not resumable did not end in time: its action ends
        FAILED ("Interrupted"), and nobody runs it again."""
        job.lose()
        log.warning(
            "job %s did not end within %g s of the stop: FAILED (Interrupted)",
            job.action_id,
            self._settings.stop_timeout,
        )
        action = job.action
        action.status, action.display_status = FAILED, INTERRUPTED
        action.details = {
            "code": "Interrupted",
            "description": "The process running the job stopped before the job"
            " ended; the job is not resumable, so it is not started again.",
        }
        finish_fields(action)
        try:
            # The outcome and the row's end in one fenced transaction.
            self.engine.queue.conclude(
                job.fence, Stored.of(action), expiry(action), keep=False
            )
        except JobLost:
            log.info("job %s: taken over meanwhile; its holder decides", job.action_id)
        except Exception:
            # Its lease runs out, and the take-over ends it so.
            log.exception("job %s: could not end its action", job.action_id)

    def _busy(self) -> int:
        """The running jobs that count against ``max_jobs``: not those told to
        stop (their action ended, or another process holds them now), which
        only have to return; one that has not, long after, is logged (at most
        every :data:`STUCK_EVERY` seconds)."""
        now = time.monotonic()
        with self._lock:
            jobs = list(self._running.values())
        busy = 0
        for job in jobs:
            since = job.stopped_at
            if since is None:
                busy += 1
            elif now - since >= min(self._settings.lease, STUCK_EVERY) and (
                now >= self._stuck_said.get(job.action_id, 0.0)
            ):
                self._stuck_said[job.action_id] = now + STUCK_EVERY
                log.warning(
                    "job %s was told to stop %.0f s ago and has not returned;"
                    " it no longer counts against max_jobs",
                    job.action_id,
                    now - since,
                )
        return busy


def unstorable(action_id: str, bad: TypeError) -> ActionFailed:
    """What a job's outcome that cannot be stored ends its action with."""
    log.error("job %s: its outcome cannot be stored: %s", action_id, bad)
    return ActionFailed(
        {
            "code": "UnstorableOutcome",
            "description": "The job's outcome could not be stored: " + str(bad)[:200],
        },
        display_status="Failed",
    )


def interrupted(ended: int, most: int) -> dict[str, str]:
    if most <= 1:
        text = (
            "The process running the job ended before the job did; the job is"
            " not resumable, so it was not started again."
        )
    else:
        text = (
            f"The job's process ended {ended} times before the job did"
            f" (at most {most} are allowed: max_attempts)."
        )
    return {"code": "Interrupted", "description": text}


#: This process's runners (to stop at SIGTERM and at exit).
live: weakref.WeakSet[Stopping] = weakref.WeakSet()


def terminate_all() -> None:
    for runner in list(live):
        runner.terminate()


def stop_all() -> None:
    for runner in list(live):
        runner.stop()
