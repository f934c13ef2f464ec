"""SIGTERM and the exit hook, one place for the whole package.

A process that runs jobs must act when it is told to stop (SIGTERM: a deploy,
gunicorn or uvicorn shutting down, ``aptools worker``): hand its resumable
jobs back at once, give the others time to end. Both happen here, and only in
the process that installed them:

- :func:`on_terminate` registers what to do at SIGTERM (quick, never blocks),
  :func:`on_exit` what to do when the process exits (may wait). The hooks are
  this process's: a forked child (a ``multiprocessing`` worker a job started,
  say) inherits neither, and the handler it inherits from its parent does
  nothing there but what was in place before — so ``Pool.terminate()``
  signalling its workers never touches the parent's jobs.
- :func:`install` sets the SIGTERM handler in the main thread, chained to the
  handler that was there before (gunicorn's, uvicorn's, the application's),
  which runs after ours; with the default handler in place the process then
  runs its exit hooks and ends as SIGTERM would end it. A forked child does
  not keep it: SIGTERM is back to the default handler there before any of the
  child's own code runs, so the child ends at SIGTERM even while blocked in a
  C call, and runs neither aptools' hooks nor the handler it chained to (both
  are the parent's: a ``multiprocessing`` worker signalled by
  ``Pool.terminate()`` ends, as it must for the pool to close). SIGTERM is
  blocked in the forking thread from just before the fork until then: a
  Python-level handler inherited across a fork loses a SIGTERM that reaches
  the child before the interpreter's own after-fork reset (CPython clears
  the signals it caught but had not yet handled), so a child signalled at
  once would otherwise never end. Only around aptools' own handler: one the
  application set in its place is left alone.
- An application that owns its signals sets ``APTOOLS_SIGNALS=off``: aptools
  sets no handler, and the application calls :func:`terminate` from its own
  (or stops the provider with ``provider.jobs.shutdown()``). The exit hook
  stays: it does nothing a process's end would not need.

>>> on_terminate(runner.terminate)   # at SIGTERM, in this process only
>>> install()                       # from the main thread
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any, Final

from aptools.forks import around_fork

__all__ = [
    "OPT_OUT",
    "forget",
    "install",
    "installed",
    "on_exit",
    "on_terminate",
    "terminate",
    "terminated",
]

log = logging.getLogger("aptools")

#: The environment variable that turns aptools' signal handler off (``off``,
#: ``0``, ``false`` or ``no``).
OPT_OUT: Final = "APTOOLS_SIGNALS"

_lock = threading.Lock()
_terminate_hooks: list[Callable[[], None]] = []
_exit_hooks: list[Callable[[], None]] = []
# The process whose hooks these are, and the one whose handler is set (a
# forked child inherits both numbers, and so knows they are not its own).
_state: dict[str, Any] = {"pid": os.getpid(), "handler": None, "before": None}
_exit_registered = [False]


def on_terminate(hook: Callable[[], None]) -> None:
    """Call ``hook()`` at SIGTERM in this process (before the handler that
    was there before). It must not block: stop claiming, hand work back."""
    with _lock:
        _own()
        if hook not in _terminate_hooks:
            _terminate_hooks.append(hook)
        if not _exit_registered[0]:
            _exit_registered[0] = True
            atexit.register(_at_exit)


def on_exit(hook: Callable[[], None]) -> None:
    """Call ``hook()`` when this process exits (normally, or after SIGTERM
    with the default handler); it may wait for work to end."""
    with _lock:
        _own()
        if hook not in _exit_hooks:
            _exit_hooks.append(hook)
        if not _exit_registered[0]:
            _exit_registered[0] = True
            atexit.register(_at_exit)


def forget(hook: Callable[[], None]) -> None:
    """Remove ``hook`` from this process's SIGTERM and exit hooks."""
    with _lock:
        for hooks in (_terminate_hooks, _exit_hooks):
            if hook in hooks:
                hooks.remove(hook)


def install() -> bool:
    """Set aptools' SIGTERM handler in this process, chained to the one in
    place; True if it is set (now or before). Not from a thread other than the
    main one (Python's rule), nor with ``APTOOLS_SIGNALS=off``: False then."""
    if os.environ.get(OPT_OUT, "").strip().lower() in ("off", "0", "false", "no"):
        return False
    if threading.current_thread() is not threading.main_thread():
        return installed()
    with _lock:
        _own()
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_sigterm:
            if _state["handler"] == os.getpid():
                return True
            # Inherited by a fork that skipped Python's at-fork hooks (a
            # child of os.fork has the default handler): keep its chain.
        else:
            _state["before"] = current
        _state["handler"] = os.getpid()
        signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def installed() -> bool:
    """Whether this process set aptools' SIGTERM handler itself."""
    return _state["handler"] == os.getpid() and (
        signal.getsignal(signal.SIGTERM) is _on_sigterm
    )


def terminate() -> None:
    """Run this process's SIGTERM hooks now (what aptools' handler does; for
    an application that handles SIGTERM itself)."""
    with _lock:
        if _state["pid"] != os.getpid():
            return
        _state["terminated"] = os.getpid()
        hooks = list(_terminate_hooks)
    for hook in hooks:
        try:
            hook()
        except Exception:
            log.exception("a SIGTERM hook failed")


def terminated() -> bool:
    """Whether this process ran its SIGTERM hooks (it is stopping)."""
    return _state.get("terminated") == os.getpid()


def _own() -> None:
    # Called under _lock: hooks registered before a fork are the parent's.
    if _state["pid"] != os.getpid():
        _forked()


def _forked() -> None:
    _state["pid"] = os.getpid()
    _terminate_hooks.clear()
    _exit_hooks.clear()


def _at_exit() -> None:
    if _state["pid"] != os.getpid():
        return  # a forked child exiting: the parent's hooks are not its own
    with _lock:
        hooks = list(_exit_hooks)
    for hook in hooks:
        try:
            hook()
        except Exception:
            log.exception("an exit hook failed")


def _on_sigterm(signum: int, frame: Any) -> None:
    if _state["handler"] != os.getpid():
        # Only in a child forked without Python's at-fork hooks (os.fork's
        # children have the default handler back): the handler and the one it
        # chains to are its parent's, for its parent's server or jobs. It
        # ends as SIGTERM ends a process, as its parent would expect.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
        return
    terminate()
    before = _state["before"]
    if callable(before):
        before(signum, frame)
    elif before == signal.SIG_IGN:
        return
    elif before is None or before == signal.SIG_DFL:
        _at_exit()  # the default handler ends the process at once
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


# Forking threads (by id) that blocked SIGTERM for their fork and must
# unblock it after (the child is the forking thread, under the same id).
_forking: dict[int, bool] = {}


def _before_fork() -> None:
    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        return  # APTOOLS_SIGNALS=off, or the application's handler in place
    # Pending, not caught, until the child set the default handler: caught
    # before the interpreter's after-fork reset, it would be dropped there.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    _forking[threading.get_ident()] = signal.SIGTERM not in mask


def _after_fork_in_parent() -> None:
    if _forking.pop(threading.get_ident(), False):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _reset_in_child() -> None:
    # No lock: a fork while another thread held it would leave it held here.
    global _lock
    _lock = threading.Lock()
    _forked()
    unblock = _forking.pop(threading.get_ident(), False)
    _forking.clear()
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        # The parent's handler (its pid is in _state): the default one here,
        # which ends this process even in a C call that never returns to
        # Python. The forking thread is this process's main thread.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if unblock:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


around_fork(_before_fork, _after_fork_in_parent, _reset_in_child)
