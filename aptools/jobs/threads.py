"""The threads ``def`` jobs run on: reused, one process's own.

A job thread that returns waits for the next job instead of ending, so a
store that keeps a connection per thread (SQLite) opens it, with its pragmas,
once per thread rather than once per job. A job is never queued behind
another: with no idle thread, a new one starts (a job that never returns
keeps its thread, never a slot of the next). At most ``idle`` threads wait;
one more ends when it finishes. After a fork the child starts with none
(:class:`~aptools.forks.PerProcess`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from aptools.forks import PerProcess

__all__ = ["JobThreads"]

log = logging.getLogger("aptools.jobs")

_Work = Callable[[], Any]


class JobThreads:
    """Runs callables on reused daemon threads; ``idle`` is how many may wait."""

    def __init__(self, idle: int, name: str = "aptools-job") -> None:
        self._most_idle = max(1, idle)
        self._name = name
        self._state: PerProcess[_State] = PerProcess(_State)

    def submit(self, work: _Work) -> None:
        """Run ``work()`` on an idle thread, or on a new one if none is idle.
        ``work`` handles its own errors: one that escapes is logged and the
        thread goes on waiting."""
        state = self._state.get()
        with state.lock:
            if state.idle:
                slot = state.idle.pop()
                slot.work = work
                slot.ready.set()
                return
            state.started += 1
            slot = _Slot(work)
        threading.Thread(
            target=self._serve,
            args=(state, slot),
            name=f"{self._name}-{state.started}",
            daemon=True,
        ).start()

    @property
    def started(self) -> int:
        """Threads started in this process so far."""
        return self._state.get().started

    @property
    def idle(self) -> int:
        """Threads of this process waiting for work now."""
        return len(self._state.get().idle)

    def close(self) -> None:
        """Let the idle threads end (running ones end when their work returns)."""
        state = self._state.get()
        with state.lock:
            state.closed = True
            idle, state.idle = state.idle, []
        for slot in idle:
            slot.work = None
            slot.ready.set()

    def _serve(self, state: _State, slot: _Slot) -> None:
        while True:
            work = slot.work
            if work is None:
                return
            slot.work = None
            try:
                work()
            except BaseException:
                log.exception("a job thread's work raised")
            del work
            with state.lock:
                if state.closed or len(state.idle) >= self._most_idle:
                    return
                slot.ready.clear()
                state.idle.append(slot)
            slot.ready.wait()


class _Slot:
    __slots__ = ("ready", "work")

    def __init__(self, work: _Work | None) -> None:
        self.work = work
        self.ready = threading.Event()


class _State:
    __slots__ = ("closed", "idle", "lock", "started")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Slot] = []
        self.started = 0
        self.closed = False
