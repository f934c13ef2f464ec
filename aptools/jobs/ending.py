"""A job's end, the ending half of a :class:`~aptools.jobs.runner.Runner`:
its outcome stored, and the next job claimed in the same transaction to run
in its place (:meth:`~aptools.store.jobqueue.JobQueue.conclude_and_claim`).

PERF: the job thread that ends a job claims its successor itself, in the
transaction storing the outcome, instead of waking the runner's one thread
to claim for every job thread in turn: SQLite, 2,000 empty jobs, 16 at
once on a loaded machine, 1198-1239 jobs/s against 527-825 (benchmarks/
README.md, job queues). A queue may leave claims to the runner's thread
(:attr:`~aptools.store.jobqueue.JobQueue.claim_at_end`; PostgreSQL does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from aptools.errors import JobLost, StoreUnavailable
from aptools.jobs.handle import Job, JobCanceled
from aptools.jobs.outage import ride_out
from aptools.jobs.outcome import outcome
from aptools.store.jobqueue import Claimed

if TYPE_CHECKING:
    from concurrent.futures import Future

    from aptools.jobs.settings import Engine, JobSettings

__all__ = ["Ending"]

log = logging.getLogger("aptools.jobs")


class Ending:
    """The ending half of a :class:`~aptools.jobs.runner.Runner`."""

    engine: Engine
    owner: str
    _settings: JobSettings
    _running: dict[str, Job]
    _tasks: dict[str, Future[Any]]
    _lock: threading.Lock
    _idle: threading.Condition
    _wake: threading.Event
    _draining: bool
    _stuck_said: dict[str, float]

    if TYPE_CHECKING:

        def _prepare(self, claimed: Claimed, sent: float) -> Job | None: ...

    def _conclude(
        self, job: Job, result: Any, exc: BaseException | None, follow: bool = False
    ) -> tuple[Job, Claimed] | None:
        """Store ``job``'s end; with ``follow``, claim the next job in the same
        transaction and return it (in ``_running`` already, taking the ended
        job's place) for the calling thread to start."""
        action_id = job.action_id
        # Before the outcome is stored, not after: a resume answered once it
        # is keeps its caller (and token) for the next run, to be left alone.
        self.engine.forget(action_id)
        claimed: list[Claimed] = []
        sent = time.monotonic()
        try:
            if job.lost:
                return None  # handed back or taken over: another process decides
            if isinstance(exc, JobCanceled | asyncio.CancelledError) and job.canceled:
                # The action ended already (cancel, deadline).
                ride_out(lambda: self.engine.queue.delete(job.fence), job.held_until)
                return None
            if isinstance(exc, StoreUnavailable):
                # Away longer than the lease allowed (the job's writes rode
                # out what they could): whoever claims the job after its lease
                # goes on from its checkpoint. A store's fault never ends the
                # action FAILED.
                job.lose()
                log.warning(
                    "job %s stopped: the store was unavailable for longer than "
                    "its lease allows; it is taken over from its last checkpoint "
                    "once its lease runs out",
                    action_id,
                )
                return None
            claimed = self._save_outcome(job, result, exc, follow)
        except JobLost:
            # Taken over while it ran (this process was frozen or cut off
            # past its lease): the holder now decides; nothing was written.
            job.lose()
            log.warning("job %s was taken over; its outcome was not stored", action_id)
        except StoreUnavailable:
            log.warning(
                "job %s: its end could not be stored (the store was unavailable "
                "for as long as its lease allowed); it stays claimed until its "
                "lease runs out, then is taken over",
                action_id,
            )
        except Exception:
            log.exception("job %s: its outcome could not be stored", action_id)
        finally:
            after = self._hand_over(job, claimed, sent)
        return after

    def _save_outcome(
        self, job: Job, result: Any, exc: BaseException | None, follow: bool
    ) -> list[Claimed]:
        """The outcome and the row's end in one transaction, fenced: a holder
        that lost the job (JobLost) writes nothing. Waiting INACTIVE (for
        consent, say), the row stays, claimable again once resumed. A store
        outage is ridden out while the lease holds. With ``follow`` (and this
        runner still claiming, and the job not told to stop), the next job is
        claimed in the same transaction."""
        queue = self.engine.queue
        final, expires_at, keep = outcome(self.engine, job, result, exc)
        fence = job.fence
        if (
            not follow
            or not queue.claim_at_end
            or self._draining
            or job.stopped_at is not None
        ):
            ride_out(
                lambda: queue.conclude(fence, final, expires_at, keep),
                job.held_until,
            )
            return []
        owner, lease = self.owner, self._settings.lease
        per_caller = getattr(self.engine, "per_caller", None)
        return ride_out(
            lambda: queue.conclude_and_claim(
                fence, final, expires_at, keep, owner, lease, 1, per_caller
            ),
            job.held_until,
        )

    def _hand_over(
        self, ended: Job, claimed: list[Claimed], sent: float
    ) -> tuple[Job, Claimed] | None:
        """``ended`` leaves ``_running``; the job claimed at its end (if any)
        takes its place at once, so that the count against ``max_jobs`` never
        dips and the runner claims nothing meanwhile. One the runner may not
        run now (it began to stop, or is full: a job told to stop counts no
        longer, and the runner filled its slot) is handed back."""
        action_id = ended.action_id
        follow: tuple[Job, Claimed] | None = None
        refused: list[Claimed] = []
        for one in claimed:
            if follow is not None:
                refused.append(one)
                continue
            try:
                job = self._prepare(one, sent)
            except Exception:
                log.exception("job %s: could not be started", one.action_id)
                refused.append(one)
                continue
            if job is not None:
                follow = job, one
        with self._lock:
            # Unless the action was resumed and claimed again meanwhile.
            if self._running.get(action_id) is ended:
                del self._running[action_id]
                self._tasks.pop(action_id, None)
            self._stuck_said.pop(action_id, None)
            if follow is not None:
                busy = sum(1 for j in self._running.values() if j.stopped_at is None)
                if self._draining or busy >= self._settings.max_jobs:
                    refused.append(follow[1])
                    follow = None
                else:
                    self._running[follow[0].action_id] = follow[0]
            self._idle.notify_all()
        if refused:
            with contextlib.suppress(Exception):
                self.engine.queue.hand_back([one.fence for one in refused])
        if follow is None:
            self._wake.set()
        return follow
