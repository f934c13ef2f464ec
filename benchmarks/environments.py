"""The processes and virtualenvs the contenders run in."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from aptools.cli import tcp_listener
from aptools.testing.servers import ServerNotReady, launch, stop, wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
FLASK_VENV = ROOT / "benchmarks" / ".venv-flask"


def flask_python() -> str:
    """The Flask toolkit's virtualenv, made on first use."""
    python = FLASK_VENV / "bin" / "python"
    if not python.exists():
        print("making the Flask toolkit's virtualenv in", FLASK_VENV, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(FLASK_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "-r",
                str(ROOT / "benchmarks" / "requirements-flask.txt"),
            ],
            check=True,
        )
    return str(python)


def python_for(contender: str) -> str:
    return flask_python() if contender == "flask-toolkit" else sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(core: int | None) -> list[str]:
    """A taskset prefix pinning to ``core`` (nothing with one core)."""
    if core is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(core)]


MODULES = {
    "floor": "benchmarks.contenders.floor",
    "floor-sqlite": "benchmarks.contenders.floor_sqlite",
    "floor-sqlite-thread": "benchmarks.contenders.floor_sqlite",
    "aptools": "benchmarks.contenders.aptools_app",
    "aptools-memory": "benchmarks.contenders.aptools_app",
    "flask-toolkit": "benchmarks.contenders.flask_toolkit",
}
# Contenders that differ from another only by their environment. (``aptools``
# takes its store from the runner: SQLite.)
ENVIRONMENTS = {
    "aptools-memory": {"APTOOLS_STORE": "memory:"},
    # The same-I/O floor's ASGI app with its statements in a worker thread.
    "floor-sqlite-thread": {"BENCH_FLOOR_PLACEMENT": "thread"},
}


class Server:
    """A contender under gunicorn (wsgi) or uvicorn (asgi), pinned to a core."""

    def __init__(
        self,
        contender: str,
        face: str,
        workers: int,
        env: dict[str, str],
        core: int | None,
    ) -> None:
        self.contender = contender
        self.face = face
        self.workers = workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/skeleton"
        self.env = {
            **os.environ,
            **env,
            **ENVIRONMENTS.get(contender, {}),
            "PYTHONPATH": str(ROOT),
        }
        self.core = core
        self.proc: subprocess.Popen[bytes] | None = None
        # uvicorn's own --workers socket leaves Nagle's algorithm on (about
        # 40 ms a response); served as `aptools serve` serves, from a
        # listening socket made here, for every contender alike.
        self.listener = (
            tcp_listener("127.0.0.1", self.port)
            if face == "asgi" and workers > 1
            else None
        )

    def command(self) -> list[str]:
        python = python_for(self.contender)
        module = MODULES[self.contender]
        if self.face == "wsgi":
            return [
                python,
                "-m",
                "gunicorn",
                "--workers",
                str(self.workers),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
                "--no-control-socket",
                f"{module}:app",
            ]
        if self.listener is not None:
            where = ["--fd", str(self.listener.fileno())]
        else:
            where = ["--host", "127.0.0.1", "--port", str(self.port)]
        return [
            python,
            "-m",
            "uvicorn",
            "--workers",
            str(self.workers),
            *where,
            "--log-level",
            "warning",
            "--no-access-log",
            f"{module}:asgi",
        ]

    def __enter__(self) -> Server:
        self.proc = launch(
            pin(self.core) + self.command(),
            cwd=ROOT,
            env=self.env,
            pass_fds=() if self.listener is None else (self.listener.fileno(),),
        )
        try:
            wait_until_ready(self.proc, self.base + "/", timeout=60)
        except ServerNotReady as exc:
            self.__exit__()
            raise RuntimeError(f"{self.contender} ({self.face}): {exc}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.listener is not None:
            self.listener.close()
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
