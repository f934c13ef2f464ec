"""In-process cost of the ASGI apps: each request a task on one event loop.

``python -m benchmarks.asgi_inprocess [--rounds R] [-n N] [--only NAME --op OP]``:
the floors' and aptools' ASGI apps called with a prepared scope, ``receive``
and ``send`` (no server: what the app itself costs, with the task uvicorn makes
per request), rounds alternated; median µs per request with min-max.

``--only NAME --op OP`` runs ``N`` requests of one contender, unmeasured
warm-up first, for a profiler: under ``valgrind --tool=callgrind
--instr-atstart=no`` the measured requests alone are counted (the script turns
collection on and off with ``callgrind_control``), so the instructions per
request are the total over ``N``, repeatable on a loaded machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aptools.testing import FakeGlobusAuth

SCOPE = "https://auth.globus.org/scopes/aptools-bench/action_all"
PREFIX = "/skeleton"
OPS = ("introspect", "status", "run")
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class Caller:
    """Calls one ASGI app as uvicorn would, one request at a time."""

    def __init__(self, app: App, token: str) -> None:
        self.app = app
        self.token = token.encode()
        self.counter = itertools.count()
        self.action_id = ""

    def _scope(self, method: str, path: str, body: bytes) -> dict[str, Any]:
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", b"Bearer " + self.token),
            (b"content-type", b"application/json"),
        ]
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": method,
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers,
        }

    async def call(self, method: str, path: str, body: bytes = b"") -> bytes:
        sent: list[dict[str, Any]] = []
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await asyncio.Event().wait()  # the client never goes away
            raise AssertionError  # pragma: no cover

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(self._scope(method, path, body), receive, send)
        status = sent[0]["status"]
        data = b"".join(m.get("body", b"") for m in sent[1:])
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path}: {status} {data!r}")
        return data

    def run_body(self) -> bytes:
        rid = f"asgi-{os.getpid()}-{next(self.counter)}"
        return b'{"request_id": "%s", "body": {"input_string": "hello"}}' % rid.encode()

    async def prepare(self) -> None:
        run = await self.call("POST", PREFIX + "/run", self.run_body())
        self.action_id = json.loads(run)["action_id"]

    async def requests(self, op: str, n: int) -> float:
        """Mean µs per request over ``n`` requests of ``op``, each a task."""
        loop = asyncio.get_running_loop()
        status = f"{PREFIX}/{self.action_id}/status"
        started = time.perf_counter()
        for _ in range(n):
            if op == "introspect":
                call = self.call("GET", PREFIX + "/")
            elif op == "status":
                call = self.call("GET", status)
            else:
                call = self.call("POST", PREFIX + "/run", self.run_body())
            await loop.create_task(call)
        return (time.perf_counter() - started) / n * 1e6


def apps(tmp: str) -> dict[str, App]:
    """Every contender's ASGI app (imported once the environment is set)."""
    from .contenders import aptools_app, floor, floor_sqlite

    return {
        "floor": floor.asgi,
        "floor-sqlite": floor_sqlite.asgi,
        "floor-sqlite-thread": floor_sqlite.asgi_thread,
        "aptools-memory": aptools_app.build("memory:").asgi(),
        "aptools": aptools_app.build(f"sqlite:///{tmp}/aptools.db").asgi(),
    }


def _callgrind(on: bool) -> None:
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
        capture_output=True,
        check=False,
    )


async def _main(args: argparse.Namespace, token: str, tmp: str) -> None:
    made = apps(tmp)
    names = [args.only] if args.only else list(made)
    callers = {name: Caller(made[name], token) for name in names}
    ops = [args.op] if args.op else list(OPS)
    for caller in callers.values():
        await caller.prepare()
        for op in ops:
            await caller.requests(op, 100)
    gc.freeze()
    if args.only:
        _callgrind(True)
        us = await callers[args.only].requests(ops[0], args.n)
        _callgrind(False)
        print(f"{args.only} {ops[0]}: {us:.1f} µs per request")
        return
    samples: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for op in ops:
            for name in order:
                us = await callers[name].requests(op, args.n)
                samples.setdefault((op, name), []).append(us)
    for (op, name), values in samples.items():
        ordered = sorted(values)
        print(
            f"{op:10} {name:20} {ordered[len(ordered) // 2]:8.1f} µs"
            f" ({ordered[0]:.1f}-{ordered[-1]:.1f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.asgi_inprocess")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--only", help="one contender, for a profiler")
    parser.add_argument("--op", choices=OPS)
    args = parser.parse_args(argv)
    # A slow machine (or valgrind) must not turn the first introspection
    # into a 503: the fake Globus Auth lives in this process.
    os.environ.setdefault("BENCH_AUTH_TIMEOUT", "120")
    with FakeGlobusAuth(scope=SCOPE) as auth, tempfile.TemporaryDirectory() as tmp:
        bench = auth.identity("bench@example.org")
        os.environ.update(
            {
                **auth.env(),
                "BENCH_SCOPE": SCOPE,
                "BENCH_SQLITE": f"sqlite:///{tmp}/f.db",
            }
        )
        asyncio.run(_main(args, bench.token, tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
