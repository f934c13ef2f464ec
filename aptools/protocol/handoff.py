"""Handing blocking calls from an event loop to worker threads, cheaply.

Under ASGI a call that may block (a ``def`` handler, a network store's
statement, a Globus groups look-up: :class:`~aptools.protocol.effects.Blocking`)
is made in a worker thread so that it never stalls the event loop; the
request's task awaits its result. :class:`Workers` is the pool those calls go
to: up to ``size`` threads per process, started on demand and kept.

A call never waits behind another while the pool has fewer than ``size``
threads: with no idle thread, a new one starts, so ``size`` calls can block at
once. Each call runs in a copy of the request's context (as
:func:`asyncio.to_thread` runs it), so log records and spans made in the
thread know their request. A call whose awaiting task was cancelled before a
thread took it is not made. At interpreter exit, calls still running are
waited for (as :class:`concurrent.futures.ThreadPoolExecutor` waits for its
own); after a fork the child starts with no thread.

PERF: ``loop.run_in_executor`` costs about 168,000 instructions a call on
CPython 3.11 (``concurrent.futures`` futures with their condition variables,
the executor's semaphore, the chaining of the two futures); this hand-off,
one :class:`queue.SimpleQueue` and one ``call_soon_threadsafe``, about 65,000
(callgrind, 2,000 calls of a trivial function from one event loop; a call made
on the loop itself costs 47,500 with its task).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import os
import threading
import weakref
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Final, TypeVar

from aptools.forks import after_fork

__all__ = ["DEFAULT_SIZE", "Workers", "default_workers"]

T = TypeVar("T")

#: The default pool's size: asyncio's default executor's, ``min(32, CPUs + 4)``.
DEFAULT_SIZE: Final = min(32, (os.cpu_count() or 1) + 4)

_Item = tuple[
    "asyncio.Future[Any]", contextvars.Context, Callable[..., Any], tuple[Any, ...]
]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    # On the loop: the awaiting task may have been cancelled meanwhile.
    if not future.done():
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class Workers:
    """Up to ``size`` worker threads (per process) that blocking calls are
    handed to from an event loop; threads are named ``{name}-N``."""

    def __init__(self, size: int, name: str = "aptools-blocking") -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one thread, not {size}")
        self.size = size
        self.name = name
        self._reset()
        _pools.add(self)

    def _reset(self) -> None:
        # Also a forked child's first act: its parent's threads are not its own.
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = 0
        self._free = 0  # idle threads not yet promised a queued call
        self._waiting = 0  # queued calls no thread was promised to (pool full)

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` in a worker thread, in a copy of the current context;
        its result (or exception) comes in the future. Call from a running
        event loop (``RuntimeError`` otherwise)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        start = 0
        with self._lock:
            if self._free:
                self._free -= 1
            elif self._started < self.size:
                self._started += 1
                start = self._started
            else:
                self._waiting += 1
        if start:
            # Before the call is queued: a thread that cannot start fails this
            # call alone, which then never runs.
            self._start(start)
        self._queue.put((future, contextvars.copy_context(), fn, args))
        return future

    @property
    def started(self) -> int:
        """Threads started in this process so far (they are kept)."""
        return self._started

    def _start(self, number: int) -> None:
        thread = threading.Thread(
            target=self._work,
            args=(self._queue,),
            name=f"{self.name}-{number}",
            daemon=True,  # waited for at exit by _drain, not by threading
        )
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._started -= 1
            raise
        with self._lock:
            self._threads.append(thread)

    def _work(self, queue: SimpleQueue[_Item | None]) -> None:
        get = queue.get
        while True:
            item = get()
            if item is None:
                return
            future, context, fn, args = item
            del item
            ok, value = True, None
            if not future.cancelled():
                try:
                    value = context.run(fn, *args)
                except BaseException as exc:  # handed to the awaiting task
                    ok, value = False, exc
            # Free before the result is handed over, so that the call the
            # awaiting task makes next finds this thread idle, not a new one.
            with self._lock:
                if self._waiting:
                    self._waiting -= 1  # this thread takes a queued call next
                else:
                    self._free += 1
            if not future.cancelled():
                # PERF: try/except, not contextlib.suppress, on every call.
                try:  # noqa: SIM105
                    future.get_loop().call_soon_threadsafe(_settle, future, ok, value)
                except RuntimeError:
                    pass  # the loop is closed: nobody awaits the result
            del future, context, fn, args, value

    def _drain(self) -> None:
        """Let every thread end once the calls queued before now are made, and
        wait for them."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()
        self._reset()


_pools: weakref.WeakSet[Workers] = weakref.WeakSet()
_default: list[Workers] = []


def default_workers() -> Workers:
    """The process's shared pool (:data:`DEFAULT_SIZE` threads), made on first
    use: blocking calls go there unless a pool of their own was given
    (``handler_threads``)."""
    if not _default:
        with _making:
            if not _default:
                _default.append(Workers(DEFAULT_SIZE))
    return _default[0]


_making = threading.Lock()


@atexit.register
def _drain_all() -> None:
    for pool in list(_pools):
        pool._drain()


def _forked() -> None:
    global _making
    _making = threading.Lock()
    for pool in list(_pools):
        pool._reset()


after_fork(_forked)
