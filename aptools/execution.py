"""Where a provider's work is executed: the run's handler, and housekeeping.

One :class:`Execution` per compiled provider (``spec.execution``). It is the
seam between the protocol core, which decides *what* to do, and the place
where the work happens:

- :meth:`Execution.submit` — the work of a run (its handler call). Today the
  work is done inline: ``submit`` returns the handler's own effect, which the
  request's driver performs, so ``run`` answers with the handler's result. A
  background executor would instead record the work for a worker to claim
  from the store (with a lease) and answer at once with an ACTIVE action.
- :meth:`Execution.start` / :meth:`Execution.stop` — the per-process
  housekeeping: a daemon thread that purges expired actions every
  ``purge_interval`` seconds, off the request path. It starts lazily, on the
  first ``submit`` in each process, so that a server which forks its workers
  after loading the app (gunicorn) starts one thread per worker, never one
  inherited half-dead from the parent.

Example (what ``run`` does)::

    effect = spec.execution.submit(spec.handlers["run"], request, caller)
    result = yield effect            # the handler's answer (inline execution)
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aptools.protocol.effects import Effect
    from aptools.protocol.spec import Handler
    from aptools.store import Store

__all__ = ["Execution", "handler_table"]

log = logging.getLogger("aptools")

_all: weakref.WeakSet[Execution] = weakref.WeakSet()


class Execution:
    """Executes runs (inline) and keeps the store tidy (a thread per process).

    ``store`` is the provider's store; ``purge_interval`` is in seconds
    (``None`` turns purging off: the store is purged by whoever owns it).
    """

    def __init__(self, store: Store, purge_interval: float | None = 60.0) -> None:
        self.store = store
        self.purge_interval = purge_interval
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

    def start(self) -> None:
        """Start this process's housekeeping thread (again after :meth:`stop`)."""
        with self._lock:
            self._stopped = False
            if self._thread is not None or self.purge_interval is None:
                return
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._housekeep,
                args=(self._stopping, self.purge_interval),
                name="aptools-housekeeping",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop this process's housekeeping thread and wait (``timeout`` s) for it.

        A later :meth:`submit` does not start it again; :meth:`start` does.
        """
        with self._lock:
            self._stopped = True
            thread, self._thread = self._thread, None
            self._stopping.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether this process's housekeeping thread is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _housekeep(self, stopping: threading.Event, interval: float) -> None:
        while not stopping.is_set():
            try:
                from aptools.protocol.effects import store_call

                store_call(self.store).now(self.store.purge, time.time())
            except Exception:
                log.exception("purging expired actions failed; trying again later")
            stopping.wait(interval)

    def _forked(self) -> None:
        # The child has no thread of its parent's: start afresh on first use.
        self._lock = threading.Lock()
        self._thread = None
        self._stopping = threading.Event()


def handler_table(
    handlers: Mapping[str, Callable[..., Any]], offload: bool, threads: int | None
) -> dict[str, Handler]:
    """How to call each handler, decided once: an ``async def`` is awaited;
    a ``def`` runs in a worker thread under ASGI (the default executor, or a
    pool of ``threads``) unless ``offload`` is false, and in place under WSGI.
    """
    from aptools.protocol.effects import (
        Await,
        Blocking,
        Call,
        ThreadPool,
        blocking_in,
    )
    from aptools.protocol.spec import Handler

    blocking = Blocking if threads is None else blocking_in(ThreadPool(threads))
    plain = blocking if offload else Call
    return {
        name: Handler(fn, Await if is_async(fn) else plain)
        for name, fn in handlers.items()
    }


def is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


def _after_fork() -> None:
    for execution in list(_all):
        execution._forked()


os.register_at_fork(after_in_child=_after_fork)
