"""The gunicorn worker class ``aptools serve`` uses: gthread, idle-safe.

gunicorn 27's gthread worker hands every new connection to a pool thread,
which waits up to 5 s (``DEFAULT_WORKER_DATA_TIMEOUT``) for its first bytes
before parking it in the worker's poller. With as many idle connections as
threads, every thread waits and the server answers nobody for those seconds
(40 idle connections on 2 workers x 8 threads: 15-20 s without an answer).
This worker parks a new connection in the poller at once; it takes a thread
only when its request begins to arrive. One that sends nothing is closed
after the time gthread would give it (5 s, plus ``--keep-alive``).

gunicorn answers the requests it cannot parse itself (a malformed request
line or header, folded header lines, a header section over its limits: 400,
414, 431...) with an HTML page written by ``gunicorn.util.write_error``; in
this worker's process it writes ``{"code", "description"}`` instead
(:mod:`aptools.wire`), as every other answer, quoting nothing the client sent.
"""

from __future__ import annotations

import errno
import selectors
import time
from functools import partial
from typing import Any

from gunicorn import glogging  # type: ignore[import-untyped]
from gunicorn.workers import base, gthread  # type: ignore[import-untyped]

from aptools.logjson import JSONFormatter
from aptools.wire import error_answer

__all__ = ["JSONLogger", "ThreadWorker"]

#: How long a new connection may stay silent: gthread's own wait for first
#: data, after which it also parks the connection for ``keepalive`` more.
FIRST_DATA: float = float(getattr(gthread, "DEFAULT_WORKER_DATA_TIMEOUT", 5.0))

_BUSY = (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK)


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, answering JSON (:mod:`aptools.wire`);
    ``reason`` and ``mesg`` may quote the client's request and are not used."""
    base.util.write_nonblock(sock, error_answer(status_int))


class _JSONErrors:
    """gunicorn's ``util`` module as the worker base sees it, but for
    ``write_error`` (the only way into gunicorn's error page)."""

    def __init__(self, util: Any) -> None:
        self._util = util
        self.write_error = write_json_error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._util, name)


class ThreadWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """gthread, with new connections waiting for data in the poller, and
    aptools' SIGTERM handler before gunicorn's (running jobs are handed back
    at SIGTERM, not once the requests in flight are answered), and gunicorn's
    own error answers in JSON."""

    def init_signals(self) -> None:
        super().init_signals()
        from aptools.signals import install

        install()

    def init_process(self) -> None:
        # In this worker process only: Worker.handle_error writes the page.
        if not isinstance(base.util, _JSONErrors):
            base.util = _JSONErrors(base.util)
        super().init_process()

    def accept(self, listener: Any) -> None:
        if not hasattr(self, "pending_conns"):  # a gunicorn without it
            super().accept(listener)
            return
        try:
            sock, address = listener.accept()
        except OSError as exc:
            if exc.errno not in _BUSY:
                raise
            return
        self.nr_conns += 1
        sock.setblocking(False)
        conn = gthread.TConn(self.cfg, sock, address, listener.getsockname())
        conn.timeout = time.monotonic() + FIRST_DATA + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(
            sock,
            selectors.EVENT_READ,
            partial(self.on_pending_socket_readable, conn),
        )


class JSONLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's own log (its error log: start-up, workers, signals) in
    the JSON format of :mod:`aptools.logjson` (``aptools serve
    --log-format json``)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(JSONFormatter())
