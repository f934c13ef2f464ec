"""In-process cost per request: call WSGI callables directly.

Run as a worker (``python -m benchmarks.inprocess CONTENDER...``) by the
runner: it builds its contenders, then answers commands on stdin, one round
at a time, so that contenders living in different virtualenvs are still
alternated round by round. Imports nothing of aptools unless asked to.
"""

from __future__ import annotations

import importlib
import io
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

PREFIX = "/skeleton"


def _environ(method: str, path: str, body: bytes, token: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


class Contender:
    """A WSGI app and the three requests measured on it."""

    def __init__(self, name: str, app: Callable[..., Any], token: str) -> None:
        self.name = name
        self.app = app
        self.token = token
        self.status_line = ""
        self.counter = itertools.count()
        run = self.call("POST", PREFIX + "/run", self._run_body())
        self.action_id = json.loads(run)["action_id"]

    def _start(self, status: str, headers: Any, exc_info: Any = None) -> None:
        self.status_line = status

    def call(self, method: str, path: str, body: bytes = b"") -> bytes:
        out = b"".join(self.app(_environ(method, path, body, self.token), self._start))
        if not self.status_line.startswith("20"):
            raise RuntimeError(
                f"{self.name} {method} {path}: {self.status_line} {out!r}"
            )
        return out

    def _run_body(self) -> bytes:
        rid = f"bench-{os.getpid()}-{next(self.counter)}"
        return b'{"request_id": "%s", "body": {"input_string": "hello"}}' % rid.encode()

    def measure(self, op: str, n: int) -> float:
        """Mean microseconds per request over ``n`` requests of ``op``."""
        if op == "introspect":
            path = PREFIX + "/"
            started = time.perf_counter()
            for _ in range(n):
                self.call("GET", path)
        elif op == "status":
            path = f"{PREFIX}/{self.action_id}/status"
            started = time.perf_counter()
            for _ in range(n):
                self.call("GET", path)
        elif op == "run":
            bodies = [self._run_body() for _ in range(n)]
            started = time.perf_counter()
            for body in bodies:
                self.call("POST", PREFIX + "/run", body)
        else:
            raise ValueError(op)
        return (time.perf_counter() - started) / n * 1e6


def build(name: str, token: str) -> Contender:
    if name in ("floor", "floor-sqlite"):
        module = importlib.import_module(
            "benchmarks.contenders." + name.replace("-", "_")
        )
        return Contender(name, module.app, token)
    if name == "flask-toolkit":
        module = importlib.import_module("benchmarks.contenders.flask_toolkit")
        return Contender(name, module.app, token)
    if name.startswith("otel-"):
        module = importlib.import_module("benchmarks.contenders.otel_app")
        return Contender(name, module.build(name.removeprefix("otel-")).wsgi(), token)
    if name.startswith("aptools-"):
        module = importlib.import_module("benchmarks.contenders.aptools_app")
        stores = {
            "aptools-sqlite": "BENCH_SQLITE",
            "aptools-postgresql": "BENCH_POSTGRESQL",
        }
        store = os.environ[stores[name]] if name in stores else "memory:"
        return Contender(name, module.build(store).wsgi(), token)
    raise ValueError(f"unknown contender {name}")


def main() -> None:
    token = os.environ["BENCH_TOKEN"]
    contenders = [build(name, token) for name in sys.argv[1:]]
    print(json.dumps({"ready": [c.name for c in contenders]}), flush=True)
    for line in sys.stdin:
        op, n = line.split()
        results = {c.name: c.measure(op, int(n)) for c in contenders}
        print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
