"""Helpers for the ``aptools`` command's tests: commands in the background,
providers served from a thread of the test process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import IO, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from aptools.testing import FakeGlobusAuth
from aptools.testing.servers import ServerNotReady, wait_until_ready

from .servers import ROOT


def cli_env(auth: FakeGlobusAuth | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for the command, pointed at ``auth`` when given."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    if auth is not None:
        env.update(auth.env())
        env["WATCHASAY_SCOPE"] = env["COUNTDOWN_SCOPE"] = auth.scope
    return {**env, **extra}


class Launched:
    """``aptools ARGS`` running in the background; its output goes to a file."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str]) -> None:
        self.output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aptools.cli", *args],
            cwd=cwd,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )

    def said(self) -> str:
        fd = self.output.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def wait_for(self, found: Callable[[str], bool], timeout: float = 30) -> str:
        """What it said, once ``found`` holds for it; raises if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            said = self.said()
            if found(said):
                return said
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"never happened; exit {self.proc.poll()}:\n{said}")

    def ready(self, url: str, timeout: float = 90) -> None:
        """Return once ``url`` answers at all."""
        try:
            wait_until_ready(self.proc, url, timeout=timeout, statuses=range(100, 600))
        except ServerNotReady as exc:
            raise AssertionError(f"{exc}: {self.said()}") from None

    def exit_status(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.output.close()

    def __enter__(self) -> Launched:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class ThreadServer:
    """A WSGI app served from a thread on 127.0.0.1; stop and start it again
    on the same port to play a server restart."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.app = app
        self.port = port
        self._server: WSGIServer | None = None

    def start(self) -> ThreadServer:
        self._server = make_server(
            "127.0.0.1", self.port, self.app, _Threading, handler_class=_Quiet
        )
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextlib.contextmanager
def served(app: Any) -> Iterator[ThreadServer]:
    server = ThreadServer(app).start()
    try:
        yield server
    finally:
        server.stop()
