"""Waking runners across processes and hosts: ``LISTEN``/``NOTIFY``.

Once a run's action is stored, :meth:`PostgresJobQueue.announce` sends
``pg_notify`` on the queue's channel (one per schema and namespace); every
runner of that queue ``LISTEN`` s on a connection of its own (not from the
pool: a pooled connection is shared and would miss notifications), in a
daemon thread, and is woken within milliseconds of the commit, wherever the
job was accepted. Losing that connection costs only speed: the runner still
polls every ``job_poll_interval``, and the listener reconnects (after 0.1 s,
doubling up to 5 s) until it listens again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from aptools.store.postgresql.database import Database

__all__ = ["Listener", "channel"]

log = logging.getLogger("aptools.jobs")

_FIRST_RETRY: Final = 0.1
_LAST_RETRY: Final = 5.0


def channel(schema: str, namespace: str) -> str:
    """The channel of one queue: a valid identifier under PostgreSQL's 63
    bytes whatever the schema and namespace."""
    digest = hashlib.sha256(f"{schema}\0{namespace}".encode()).hexdigest()
    return f"aptools_jobs_{digest[:32]}"


class Listener:
    """A thread listening on ``name`` through a connection of ``db``'s own,
    calling ``wake()`` at every notification, until :meth:`close`."""

    def __init__(self, db: Database, name: str, wake: Callable[[], None]) -> None:
        self._db = db
        self._name = name
        self._wake = wake
        self._closed = threading.Event()
        #: Set each time the listener is (again) listening.
        self.listening = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name="aptools-jobs-listen", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop listening; the thread closes the connection within a second."""
        self._closed.set()

    def _serve(self) -> None:
        retry = _FIRST_RETRY
        while not self._closed.is_set():
            try:
                with self._db.connect() as conn:
                    conn.execute(f'LISTEN "{self._name}"'.encode())
                    self.listening.set()
                    retry = _FIRST_RETRY
                    self._wake()  # what was announced while it did not listen
                    while not self._closed.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wake()
            except Exception as exc:
                self.listening.clear()
                if self._closed.is_set():
                    break
                log.warning(
                    "job notifications lost (%s); the runner polls meanwhile, "
                    "listening again in %.1f s",
                    type(exc).__name__,
                    retry,
                )
                self._closed.wait(retry)
                retry = min(retry * 2, _LAST_RETRY)
        self.listening.clear()
