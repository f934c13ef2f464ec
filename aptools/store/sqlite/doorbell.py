"""Waking the runners of other processes on one host: a SQLite queue's doorbell.

SQLite has no notifications, and a SQLite store lives on one host. Each
runner of a queue binds a Unix datagram socket in a directory of its own
for that file and namespace (under the system's temporary directory,
private to the user: ``aptools-wake-<uid>/<digest>/``); :meth:`Doorbell.ring`
sends one byte to every socket there, so a job stored by another process
starts within milliseconds instead of at the next poll. Nothing depends on
it: a ring lost (a full socket buffer, another user's process, a platform
without Unix sockets) leaves the job to the poll (``job_poll_interval``).
A socket whose process died is removed by the next ring that finds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Callable

from aptools.forks import PerProcess

__all__ = ["Doorbell"]

log = logging.getLogger("aptools.jobs")

_UNIX = hasattr(socket, "AF_UNIX")


def _sender() -> socket.socket:
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    return sender


_SENDER: PerProcess[socket.socket] = PerProcess(_sender)


class Doorbell:
    """The doorbell of the queue ``namespace`` in the SQLite file ``path``."""

    def __init__(self, path: str, namespace: str) -> None:
        digest = hashlib.sha256(
            f"{os.path.realpath(path)}\0{namespace}".encode()
        ).hexdigest()[:32]
        base = os.path.join(tempfile.gettempdir(), f"aptools-wake-{os.getuid()}")
        self.folder = os.path.join(base, digest)

    def ring(self) -> None:
        """Wake every runner listening here (best effort, never raises)."""
        if not _UNIX:
            return
        try:
            names = os.listdir(self.folder)
        except OSError:
            return  # nobody listens yet
        sender = _SENDER.get()
        for name in names:
            where = os.path.join(self.folder, name)
            try:
                sender.sendto(b"!", where)
            except BlockingIOError:
                pass  # its buffer is full: it has been woken already
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    os.unlink(where)  # its process is gone
            except OSError:
                pass

    def listen(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``wake()`` at every ring, from a daemon thread, until the
        returned function is called; ``None`` if no socket could be bound."""
        if not _UNIX:
            return None
        where = os.path.join(self.folder, f"{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            listener.bind(where)
        except OSError as exc:
            log.warning("no wake-ups for jobs (%s); the runner polls", exc)
            return None
        listener.settimeout(1.0)
        closed = threading.Event()

        def serve() -> None:
            try:
                while not closed.is_set():
                    try:
                        listener.recv(64)
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                    wake()
            finally:
                listener.close()
                with contextlib.suppress(OSError):
                    os.unlink(where)

        threading.Thread(
            target=serve, name="aptools-jobs-doorbell", daemon=True
        ).start()

        def close() -> None:
            closed.set()

        return close
