"""The runner: one per provider and process, it claims and runs jobs.

A daemon thread claims jobs whose lease ran out (at most ``max_jobs`` running
at once), renews the leases of its running jobs every third of a lease,
enforces deadlines and deletes the rows of ended actions. ``def`` jobs run on
reused threads (:mod:`aptools.jobs.threads`), ``async def`` jobs on one event
loop thread.

At SIGTERM (:meth:`Runner.terminate`, through :mod:`aptools.signals`) the
runner claims no more; a resumable job is handed back at once (the claim
counts as an attempt), for another process to take over from its checkpoint
without waiting for its lease; a job that is not resumable goes on, its lease
renewed, for at most ``stop_timeout`` seconds. At exit (:meth:`Runner.stop`)
one still running then ends FAILED ("Interrupted"): never started twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Final

from aptools.actions import (
    DEADLINE_PASSED,
    INTERRUPTED,
    end_at_deadline,
    expiry,
    finish_fields,
)
from aptools.errors import ActionFailed, JobLost
from aptools.failures import Failures
from aptools.jobs.ending import Ending
from aptools.jobs.handle import Job
from aptools.jobs.observing import lease_expired, observed
from aptools.jobs.outage import ride_out
from aptools.jobs.settings import Engine
from aptools.jobs.stopping import (
    Stopping,
    interrupted,
    live,
    stop_all,
    terminate_all,
)
from aptools.jobs.threads import JobThreads
from aptools.models import Action
from aptools.signals import install, on_exit, on_terminate
from aptools.store import Stored
from aptools.store.jobqueue import Claimed
from aptools.vocabulary import ACTIVE, FAILED, TERMINAL

__all__ = ["DEADLINE_PASSED", "INTERRUPTED", "MOST_ATTEMPTS", "Engine", "Runner"]

log = logging.getLogger("aptools.jobs")

_GENERIC: Final = {
    "code": "JobFailed",
    "description": "The job failed with an unexpected error.",
}
_SWEEP_EVERY: Final = 60.0
#: The default of ``max_attempts``: processes that may end while running a
#: resumable job before its action ends FAILED.
MOST_ATTEMPTS: Final = 10


class Runner(Ending, Stopping):
    """Claims and runs one provider's jobs in this process."""

    def __init__(self, engine: Engine, owner: str) -> None:
        self.engine = engine
        self.owner = owner
        self._settings = engine.settings
        self._running: dict[str, Job] = {}
        self._tasks: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # Held while claiming for free slots: by the runner's thread, or by
        # the listener's when it is woken (never both at once).
        self._claiming = threading.Lock()
        self._stopping = False
        # SIGTERM came: claim nothing more; jobs not resumable may run on
        # until _drain_until (time.monotonic).
        self._draining = False
        self._drain_until = 0.0
        self._idle = threading.Condition(self._lock)
        self._stuck_said: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_beat = 0.0
        self._next_sweep = 0.0
        self._next_due = 0.0
        #: Where ``def`` jobs run: up to ``max_jobs`` threads kept between jobs.
        self.threads = JobThreads(self._settings.max_jobs)
        self._unlisten: Callable[[], None] | None = None

    # -- control ------------------------------------------------------------------

    def start(self) -> None:
        if self.engine.is_async:
            loop = self._loop = asyncio.new_event_loop()
            threading.Thread(
                target=_serve, args=(loop,), name="aptools-jobs-loop", daemon=True
            ).start()
        self._thread = threading.Thread(
            target=self._main, name="aptools-jobs", daemon=True
        )
        self._thread.start()
        live.add(self)
        on_terminate(terminate_all)
        on_exit(stop_all)
        install()
        self._listen()

    def _listen(self) -> None:
        # Woken when another process or host accepts a job, where the queue
        # can tell (PostgreSQL's LISTEN/NOTIFY); else the poll finds it.
        try:
            self._unlisten = self.engine.queue.listen(self._notified)
        except Exception:
            log.exception("could not listen for jobs; the runner polls")

    def wake(self) -> None:
        self._wake.set()

    def _notified(self) -> None:
        """Another process accepted a job (on the listener's thread): claim
        it here, unless the runner is claiming now (then it claims again)."""
        # PERF: one thread hand-off fewer between the NOTIFY and the job's
        # start than waking the runner's thread to claim.
        if self._draining or not self._claiming.acquire(blocking=False):
            self._wake.set()
            return
        try:
            self._claim_free()
        except Exception:
            self._wake.set()  # the runner claims, and says what failed
        finally:
            self._claiming.release()

    @property
    def running(self) -> int:
        return len(self._running)

    def stop_job(self, action_id: str) -> None:
        job = self._running.get(action_id)
        if job is not None:
            job.stop()

    # -- the main loop ------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._loop_until_stopped()
        finally:
            self.threads.close()
            if self._unlisten is not None:
                self._unlisten()

    def _loop_until_stopped(self) -> None:
        failures = Failures("job runner", log)
        while not self._stopping:
            if self.engine.store.closed:
                log.info("the store was closed: the job runner stops")
                return
            try:
                self._tick(time.time())
            except Exception as exc:
                if self.engine.store.closed:
                    continue  # closed meanwhile: said at the loop's top
                failures.failed(exc)
            else:
                failures.succeeded()
            # Heartbeats are due every third of a lease, whatever the poll.
            self._wake.wait(min(self._settings.poll_interval, self._settings.lease / 3))
            self._wake.clear()

    def _tick(self, now: float) -> None:
        queue = self.engine.queue
        settings = self._settings
        if now >= self._next_beat:
            # Due again a third of a lease after it succeeded; while the
            # store is away, at every tick (riding out the outage).
            self._heartbeat(now)
            self._next_beat = now + settings.lease / 3
        if now >= self._next_due:
            # PERF: at most once per poll interval, not at every wake-up (a
            # job ending wakes the runner): the look-up scans the queue.
            self._next_due = now + settings.poll_interval
            for action_id in queue.due():
                self._deadline(action_id, now)
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_EVERY
            queue.sweep(grace=max(settings.lease, 300.0))
        with self._claiming:
            self._claim_free()

    def _claim_free(self) -> None:
        """Claim jobs for the free slots (holding ``_claiming``)."""
        free = self._settings.max_jobs - self._busy()
        if free > 0 and not self._draining:
            sent = time.monotonic()
            for claimed in self._claim(free):
                self._launch(claimed, sent)

    def _claim(self, free: int) -> list[Claimed]:
        """Claim up to ``free`` jobs; with a cap per caller, fairly."""
        queue, lease = self.engine.queue, self._settings.lease
        per_caller = getattr(self.engine, "per_caller", None)
        if per_caller is None:
            return queue.claim(self.owner, lease, free)
        return queue.claim_fair(self.owner, lease, free, per_caller)

    def _heartbeat(self, now: float) -> None:
        with self._lock:
            held = dict(self._running)
        if not held:
            return
        sent = time.monotonic()
        beats = self.engine.queue.heartbeat(
            [job.fence for job in held.values()], self._settings.lease
        )
        alive = set()
        for beat in beats:
            alive.add(beat.action_id)
            held[beat.action_id].renewed(sent, stop=beat.stop)
        for action_id, job in held.items():
            if action_id not in alive:
                ended = job.stopping or job.action.status != ACTIVE
                if ended and not job.lost:
                    # Its own end (or a cancel) raced this heartbeat and took
                    # the row with it: nobody took it over. (A job that found
                    # itself lost, by its own renewal, was taken over.)
                    log.debug("job %s ended as its lease was renewed", action_id)
                else:
                    log.warning(
                        "job %s is no longer held here (its lease ran out and "
                        "another process took it over, or it was deleted); "
                        "stopping it",
                        action_id,
                    )
                    lease_expired(self.engine)
                job.lose()

    def _deadline(self, action_id: str, now: float) -> None:
        store = self.engine.store
        stored = store.get(action_id, now)
        if stored is not None and stored.status not in TERMINAL:
            action = end_at_deadline(stored.action())
            store.update(action_id, Stored.of(action), expiry(action), now)
        self.engine.queue.request_cancel(action_id)
        self.stop_job(action_id)

    # -- one job ------------------------------------------------------------------

    def _launch(self, claimed: Claimed, sent: float) -> None:
        job = self._prepare(claimed, sent)
        if job is None:
            return
        with self._lock:
            self._running[claimed.action_id] = job
        self._begin(job, claimed, here=False)

    def _begin(
        self, job: Job, claimed: Claimed, here: bool
    ) -> tuple[Job, Action, Any] | None:
        """Start ``job`` (in ``_running`` already): an ``async def`` one on the
        loop; a ``def`` one on a job thread, or, ``here``, returned to run on
        the calling job thread."""
        # The function gets a copy of its own; the handle keeps what it saved.
        mine = Stored.of(job.action).action()
        queue, fence = self.engine.queue, claimed.fence
        try:
            caller = self.engine.caller_for(
                claimed.action_id,
                claimed.caller,
                claimed.tokens,
                lambda sealed: queue.save_tokens(fence, sealed),
            )
        except ActionFailed as failed:  # its kept tokens cannot be read
            self._conclude(job, None, failed)
            return None
        if self._loop is not None:
            future = asyncio.run_coroutine_threadsafe(
                self._run_async(job, mine, caller), self._loop
            )
            self._tasks[claimed.action_id] = future
            # A stop cancels the coroutine (it sees CancelledError).
            job._on_cancel = lambda: self._loop_cancel(future)
            if job.canceled:
                future.cancel()
            return None
        if here:
            return job, mine, caller
        self._start_sync(job, mine, caller)
        return None

    def _loop_cancel(self, future: Future[Any]) -> None:
        future.cancel()

    def _prepare(self, claimed: Claimed, sent: float) -> Job | None:
        engine = self.engine
        now = time.time()
        stored = claimed.stored or engine.store.get(claimed.action_id, now)
        if stored is None or stored.status != ACTIVE:
            engine.queue.hand_back([claimed.fence])
            return None
        action = stored.action()
        most = self._settings.max_attempts if self._settings.resumable else 1
        if claimed.attempts > most:
            # Not resumable, or a job whose every run ends its process (say,
            # out of memory): ending it beats taking workers down forever.
            log.warning(
                "job %s was interrupted %d times",
                action.action_id,
                claimed.attempts - 1,
            )
            action.status, action.display_status = FAILED, INTERRUPTED
            action.details = interrupted(claimed.attempts - 1, most)
            finish_fields(action)
            # Taken over meanwhile (JobLost): the new holder decides.
            with contextlib.suppress(JobLost):
                engine.queue.conclude(
                    claimed.fence, Stored.of(action), expiry(action), keep=False
                )
            return None
        return Job(
            action=action,
            queue=engine.queue,
            fence=claimed.fence,
            checkpoint=claimed.checkpoint,
            attempt=claimed.attempts,
            lease=self._settings.lease,
            claimed_at=sent,
            retry=ride_out,
        )

    def _start_sync(self, job: Job, action: Action, caller: Any) -> None:
        # PERF: a reused thread keeps its SQLite connection (and pragmas):
        # empty jobs drained 3-4x faster than with a new thread per job.
        self.threads.submit(lambda: self._run_sync(job, action, caller))

    def _run_sync(self, job: Job, action: Action, caller: Any) -> None:
        # One job after another on this thread: each end claims the next.
        while True:
            with observed(self.engine, job):
                try:
                    result = self.engine.fn(action, caller, job)
                except BaseException as exc:
                    after = self._conclude(job, None, exc, follow=True)
                else:
                    after = self._conclude(job, result, None, follow=True)
            if after is None:
                return
            started = self._begin(*after, here=True)
            if started is None:
                return
            job, action, caller = started

    async def _run_async(self, job: Job, action: Action, caller: Any) -> None:
        with observed(self.engine, job):
            try:
                result = await self.engine.fn(action, caller, job)
            except BaseException as exc:
                after = self._conclude(job, None, exc, follow=True)
            else:
                after = self._conclude(job, result, None, follow=True)
        if after is not None:
            self._begin(*after, here=False)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_forever()
    finally:
        loop.close()
