"""Fork safety, one mechanism for the whole package.

gunicorn forks its workers after the app may have been built, and a forked
child has none of its parent's threads, and must not share its parent's
connections or locks. So whatever is per process — a thread pool, a
connection pool, a runner thread, file locks — is made lazily in the process
that uses it (:class:`PerProcess`), and state that must merely be reset in a
child registers a reset (:func:`after_fork`). Both rest on :func:`generation`:
how many forks this process descends from.

>>> pool = PerProcess(lambda: ThreadPoolExecutor(4))
>>> pool.get().submit(work)   # this process's pool, made on first use
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Final, Generic, TypeVar

__all__ = ["PerProcess", "after_fork", "around_fork", "generation"]

T = TypeVar("T")

# PERF: reading a list item is cheaper than asking the OS for the process id
# on every call (os.getpid is a system call on some platforms).
_GENERATION: Final = [0]


def generation() -> int:
    """How many forks this process descends from (0 in the first process)."""
    return _GENERATION[0]


# Guards the making of each PerProcess's lock in a process: a child gets a new
# one, since a fork while another thread held it would leave it held forever.
_MAKING: Final = [threading.Lock()]


def _forked() -> None:
    _GENERATION[0] += 1
    _MAKING[0] = threading.Lock()


os.register_at_fork(after_in_child=_forked)


def after_fork(reset: Callable[[], None]) -> None:
    """Call ``reset`` in every child forked from now on, before anything else
    of the package runs there."""
    os.register_at_fork(after_in_child=reset)


def around_fork(
    before: Callable[[], None],
    in_parent: Callable[[], None],
    in_child: Callable[[], None],
) -> None:
    """Call ``before`` in the forking thread just before every fork from now
    on, then ``in_parent`` in the parent (also when the fork failed) or
    ``in_child`` in the child, after the resets of :func:`after_fork`
    registered before it (Python's order: ``os.register_at_fork``)."""
    os.register_at_fork(
        before=before, after_in_parent=in_parent, after_in_child=in_child
    )


class PerProcess(Generic[T]):
    """A value made on first use in each process (``make()``), never one
    inherited across a fork."""

    __slots__ = ("_generation", "_lock", "_lock_generation", "_make", "_value")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._generation = -1
        self._lock = threading.Lock()
        self._lock_generation = _GENERATION[0]

    def _mine(self) -> threading.Lock:
        """This process's lock: a forked child makes its own, for another
        thread of the parent may have held the parent's at the fork."""
        if self._lock_generation != _GENERATION[0]:
            with _MAKING[0]:
                if self._lock_generation != _GENERATION[0]:
                    self._lock = threading.Lock()
                    self._lock_generation = _GENERATION[0]
        return self._lock

    def get(self) -> T:
        """This process's value, made now if it has none yet."""
        value = self._value
        if value is not None and self._generation == _GENERATION[0]:
            return value
        with self._mine():
            if self._value is None or self._generation != _GENERATION[0]:
                self._value = self._make()
                self._generation = _GENERATION[0]
            return self._value

    def discard(self) -> T | None:
        """Forget this process's value (the next :meth:`get` makes another)
        and hand it back, or ``None`` if it made none."""
        with self._mine():
            value = self.current()
            self._value = None
            return value

    def current(self) -> T | None:
        """This process's value if it made one, else ``None``."""
        if self._generation != _GENERATION[0]:
            return None
        return self._value
