"""Start a server process, wait until it answers, stop it with everything it started.

For end-to-end tests and benchmarks that serve a provider under a real
gunicorn or uvicorn::

    proc = launch([sys.executable, "-m", "gunicorn", "app:app"], env=env)
    try:
        wait_until_ready(proc, "http://127.0.0.1:8000/prefix/")
        ...
    finally:
        stop(proc)

The process leads a process group of its own, so that :func:`stop` also ends
what it started (gunicorn's or uvicorn's workers), even when the server
never became ready: no orphan master is left behind. A server a test never
stopped (an assertion failed before its ``stop``) is stopped, group and all,
when the process that launched it exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import IO

__all__ = ["ServerNotReady", "launch", "stop", "wait_until_ready"]


class ServerNotReady(RuntimeError):
    """The server exited, or did not answer in time; it has been stopped."""


#: Servers launched by this process and not stopped yet.
_running: set[subprocess.Popen[bytes]] = set()


def _stop_left_behind() -> None:
    """At exit: stop every server launched here that was never stopped."""
    for proc in list(_running):
        stop(proc, grace=5.0)


atexit.register(_stop_left_behind)


def launch(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stderr: IO[bytes] | int | None = subprocess.DEVNULL,
    pass_fds: Collection[int] = (),
) -> subprocess.Popen[bytes]:
    """Start ``command`` as the leader of a new process group (stopped at
    this process's exit at the latest)."""
    proc = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
    )
    _running.add(proc)
    return proc


def wait_until_ready(
    proc: subprocess.Popen[bytes],
    url: str,
    *,
    timeout: float = 30.0,
    statuses: Collection[int] = (200,),
) -> None:
    """Return once ``GET url`` answers with one of ``statuses``.

    Any failure to get an answer (refused, reset, read timeout) means "not
    yet". Raises :class:`ServerNotReady`, after :func:`stop`, when the
    process exits or ``timeout`` seconds pass first.
    """
    import requests

    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if proc.poll() is not None:
            code = proc.returncode
            stop(proc)
            raise ServerNotReady(f"the server exited with status {code}")
        try:
            if requests.get(url, timeout=2).status_code in statuses:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    stop(proc)
    raise ServerNotReady(f"no answer from {url} within {timeout:g} s")


def stop(proc: subprocess.Popen[bytes], *, grace: float = 15.0) -> None:
    """SIGTERM the server, give it ``grace`` seconds, then SIGKILL its group.

    Whatever the server started and left behind is killed as well.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _running.discard(proc)
