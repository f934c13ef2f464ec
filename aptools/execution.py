"""Where a provider's work is executed: runs, background jobs, housekeeping.

One :class:`Execution` per compiled provider (``spec.execution``). It is the
seam between the protocol core, which decides *what* to do, and the place
where the work happens, and it owns every thread a provider runs in a
process besides the server's own:

- :meth:`Execution.submit` — the work of a run (its handler call), done
  inline: ``submit`` returns the handler's own effect, which the request's
  driver performs, so ``run`` answers with the handler's result.
- Background jobs (``@provider.job``, :mod:`aptools.jobs`): the run stores
  the action ACTIVE and enqueues its job in the store (``spec.jobs``, the
  :class:`~aptools.jobs.engine.JobEngine`, admits it and wakes the runner);
  this process's :class:`~aptools.jobs.runner.Runner` — a thread that claims
  jobs with a lease, renews it, enforces deadlines, plus a thread per ``def``
  job or one event loop for ``async def`` jobs — runs them. Any process on
  the store may claim a job: serving processes and ``aptools worker``.
- The housekeeping thread: purges expired actions every ``purge_interval``
  seconds, off the request path.
- The renewal thread: while run handlers run (:meth:`Execution.hold`), it
  renews their request keys every third of ``run_lease``
  (:meth:`Store.renew`), so that a live holder keeps its keys however long
  its handler runs, and a dead process's are free ``run_lease`` seconds
  after its last renewal.

:meth:`Execution.start` starts both (the runner only with a job), lazily: at
the first run, and under a server at the first request or the ASGI start-up
(:class:`~aptools.jobs.serving.JobStarter`), so that a server which forks its
workers after loading the app (gunicorn) starts them in each worker, never
inherited half-dead from the parent. :meth:`Execution.stop` stops both and
hands running jobs back. Both threads stop by themselves once the store is
closed (:attr:`Store.closed`); while it is unavailable they log it once, and
once more when it is back.

Example (what ``run`` does)::

    effect = spec.execution.submit(spec.handlers["run"], request, caller)
    result = yield effect            # the handler's answer (inline execution)
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from aptools.failures import Failures
from aptools.forks import after_fork

if TYPE_CHECKING:
    from aptools.jobs.engine import JobEngine
    from aptools.protocol.effects import Effect
    from aptools.protocol.handlers import Handler
    from aptools.store import Store

__all__ = ["Execution", "Failures"]

log = logging.getLogger("aptools")

_all: weakref.WeakSet[Execution] = weakref.WeakSet()


class Execution:
    """Executes runs (inline), runs jobs and keeps the store tidy (threads
    per process).

    ``store`` is the provider's store; ``purge_interval`` is in seconds
    (``None`` turns purging off: the store is purged by whoever owns it);
    ``jobs`` the provider's job engine, if it has a job.
    """

    def __init__(
        self,
        store: Store,
        purge_interval: float | None = 60.0,
        jobs: JobEngine | None = None,
        run_lease: float = 10.0,
    ) -> None:
        self.store = store
        self.purge_interval = purge_interval
        self.jobs = jobs
        self.run_lease = run_lease
        self._holds: set[str] = set()
        self._renewer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped = False
        _all.add(self)

    def submit(self, handler: Handler, *args: Any) -> Effect:
        """The effect that performs a run's work: ``handler(*args)``, inline."""
        # PERF: one attribute test per run once housekeeping runs.
        if self._thread is None and not self._stopped:
            self.start()
        return handler(*args)

    def hold(self, action_id: str) -> None:
        """``action_id``'s run handler runs: renew its request key until
        :meth:`let_go` (every third of ``run_lease``, in this process)."""
        # PERF: a set insertion and an attribute test per run.
        self._holds.add(action_id)
        if self._renewer is None:
            with self._lock:
                if self._renewer is None:
                    self._renewer = threading.Thread(
                        target=self._renew,
                        args=(self._holds,),
                        name="aptools-request-keys",
                        daemon=True,
                    )
                    self._renewer.start()

    def let_go(self, action_id: str) -> None:
        """``action_id``'s action was stored or abandoned: renew it no more."""
        self._holds.discard(action_id)

    def serving(self) -> None:
        """A request arrived (or the ASGI server started): make sure this
        process's threads run, unless :meth:`stop` stopped them."""
        # PERF: after the first request, an attribute test and, with a job,
        # the runner's process-id comparison.
        if self._stopped:
            return
        if self._thread is None and self.purge_interval is not None:
            self.start()
        elif self.jobs is not None:
            self.jobs.runner()

    def start(self) -> None:
        """Start this process's housekeeping thread and job runner (again
        after :meth:`stop`)."""
        with self._lock:
            self._stopped = False
            if self._thread is None and self.purge_interval is not None:
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._housekeep,
                    args=(self._stopping, self.purge_interval),
                    name="aptools-housekeeping",
                    daemon=True,
                )
                self._thread.start()
        if self.jobs is not None:
            self.jobs.runner()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop this process's housekeeping thread and wait (``timeout`` s) for
        it; hand this process's running jobs back and stop its runner.

        A later :meth:`submit` does not start them again; :meth:`start` does.
        """
        with self._lock:
            self._stopped = True
            thread, self._thread = self._thread, None
            self._stopping.set()
        if self.jobs is not None:
            self.jobs.shutdown()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether this process's housekeeping thread is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _housekeep(self, stopping: threading.Event, interval: float) -> None:
        from aptools.protocol.effects import store_call

        failures = Failures("purging expired actions", log)
        while not stopping.is_set():
            if self.store.closed:
                log.info("the store was closed: housekeeping stops")
                return
            try:
                store_call(self.store).now(self.store.purge, time.time())
            except Exception as exc:
                if self.store.closed:
                    continue  # closed meanwhile: said at the loop's top
                failures.failed(exc)
            else:
                failures.succeeded()
            stopping.wait(interval)

    def _renew(self, holds: set[str]) -> None:
        from aptools.protocol.effects import store_call

        call = store_call(self.store)
        failures = Failures("renewing request keys", log)
        while not self.store.closed and holds is self._holds:
            time.sleep(self.run_lease / 3)
            held = list(holds)
            if not held:
                continue
            try:
                call.now(self.store.renew, held, time.time())
            except Exception as exc:
                failures.failed(exc)
            else:
                failures.succeeded()

    def _forked(self) -> None:
        # The child has no thread of its parent's: start afresh on first use.
        self._lock = threading.Lock()
        self._thread = None
        self._stopping = threading.Event()
        self._holds = set()  # its parent's runs are not the child's
        self._renewer = None


def _after_fork() -> None:
    for execution in list(_all):
        execution._forked()


after_fork(_after_fork)
