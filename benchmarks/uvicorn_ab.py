"""uvicorn rows only, this checkout against another copy of aptools, alternated.

``python -m benchmarks.uvicorn_ab --base DIR [--rounds R] [--seconds S]``:
the floors (bare, same-I/O on the loop, same-I/O in a thread) and aptools on
the SQLite and memory stores, each under uvicorn with 1 worker pinned to
core 1, wrk (1 thread, 16 connections) pinned to core 0, as the http section
of :mod:`benchmarks.run` serves them. ``--base DIR`` is another copy of the
repository (e.g. ``git archive <commit> | tar -x -C DIR``): its aptools is
served as ``base`` beside this one's, from its own directory. Every round
runs every row once, in an order reversed from round to round; the report is
the median requests/s over the rounds, with min-max, and each aptools row's
share of its floor (the bare floor for memory, the same-I/O floors for
SQLite) computed round by round, then the median.

Needs ``wrk`` (the distribution's package). On a shared machine, read the
shares, not the rates.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

from aptools.testing import FakeGlobusAuth
from aptools.testing.servers import launch, stop, wait_until_ready

from .environments import ENVIRONMENTS, MODULES, ROOT, free_port, pin
from .http import RUN_SCRIPT, wrk

SCOPE = "https://auth.globus.org/scopes/aptools-bench/action_all"
OPS = ("introspect", "status", "run")


class _Served:
    """One contender under uvicorn (1 worker) from ``root``."""

    def __init__(self, name: str, module: str, root: Path, env: dict[str, str]):
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/skeleton"
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
            f"{module}:asgi",
        ]
        # uvicorn -m puts the working directory first on sys.path: the
        # contender's own copy of aptools is the one imported.
        self.proc = launch(
            pin(1) + command,
            cwd=root,
            env={**os.environ, **env, "PYTHONPATH": str(root)},
        )
        wait_until_ready(self.proc, self.base + "/", timeout=60)

    def prepare(self, token: str) -> str:
        headers = {"Authorization": f"Bearer {token}"}
        run = requests.post(
            self.base + "/run",
            headers=headers,
            timeout=10,
            json={"request_id": "ab-seed", "body": {"input_string": "x"}},
        )
        run.raise_for_status()
        action_id: str = run.json()["action_id"]
        for _ in range(3):
            requests.get(f"{self.base}/{action_id}/status", headers=headers, timeout=10)
        return action_id

    def close(self) -> None:
        stop(self.proc)


def contenders(base: Path | None) -> list[tuple[str, str, Path, dict[str, str]]]:
    """(name, module, root, environment) of every row's server."""
    rows = [
        ("floor", MODULES["floor"], ROOT, {}),
        ("floor-sqlite", MODULES["floor-sqlite"], ROOT, {}),
        (
            "floor-sqlite-thread",
            MODULES["floor-sqlite"],
            ROOT,
            ENVIRONMENTS["floor-sqlite-thread"],
        ),
    ]
    copies = [("now", ROOT)] + ([] if base is None else [("base", base)])
    for label, root in copies:
        rows.append((f"aptools-{label}", MODULES["aptools"], root, {}))
        rows.append(
            (
                f"aptools-memory-{label}",
                MODULES["aptools-memory"],
                root,
                ENVIRONMENTS["aptools-memory"],
            )
        )
    return rows


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def measure(base: Path | None, rounds: int, seconds: int) -> dict[str, Any]:
    auth = FakeGlobusAuth(scope=SCOPE).start()
    bench = auth.identity("bench@example.org")
    rates: dict[tuple[str, str], list[float]] = {}
    errors = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **auth.env(),
                "BENCH_SCOPE": SCOPE,
                "APTOOLS_STORE": f"sqlite:///{tmp}/http.db",
            }
            served: list[_Served] = []
            try:
                for name, module, root, extra in contenders(base):
                    # Each aptools copy on a database file of its own.
                    own = (
                        {"APTOOLS_STORE": f"sqlite:///{tmp}/{name}.db"}
                        if name.startswith("aptools")
                        else {}
                    )
                    served.append(_Served(name, module, root, {**env, **own, **extra}))
                ids = {s.name: s.prepare(bench.token) for s in served}
                for r in range(rounds):
                    order = served if r % 2 == 0 else served[::-1]
                    for op in OPS:
                        for s in order:
                            url = {
                                "introspect": s.base + "/",
                                "status": f"{s.base}/{ids[s.name]}/status",
                                "run": s.base + "/run",
                            }[op]
                            script = RUN_SCRIPT if op == "run" else None
                            got = wrk(url, bench.token, seconds, 16, script, core=0)
                            errors += got["errors"]
                            rates.setdefault((s.name, op), []).append(got["rps"])
            finally:
                for s in served:
                    s.close()
    finally:
        auth.stop()
    return {"rates": rates, "errors": errors, "rounds": rounds}


def report(found: dict[str, Any]) -> str:
    rates: dict[tuple[str, str], list[float]] = found["rates"]
    names = sorted(
        {name for name, _ in rates}, key=lambda n: list(rates).index((n, "introspect"))
    )
    lines = [
        f"{found['rounds']} rounds; errors (non-2xx and socket): {found['errors']}",
        "",
        "| op | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for op in OPS:
        cells = []
        for name in names:
            values = rates[(name, op)]
            cells.append(f"{_median(values):.0f} ({min(values):.0f}-{max(values):.0f})")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines += ["", "Shares of the floor (median of the per-round ratios):", ""]
    pairs = [
        (n, floor)
        for n in names
        if n.startswith("aptools")
        for floor in (
            ("floor",) if "memory" in n else ("floor-sqlite", "floor-sqlite-thread")
        )
    ]
    lines.append("| op | " + " | ".join(f"{n} / {f}" for n, f in pairs) + " |")
    lines.append("|---|" + "---|" * len(pairs))
    for op in OPS:
        cells = []
        for n, f in pairs:
            ratios = [
                a / b for a, b in zip(rates[(n, op)], rates[(f, op)], strict=True)
            ]
            cells.append(f"{_median(ratios):.0%}")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.uvicorn_ab")
    parser.add_argument("--base", type=Path, help="another copy of the repository")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=2)
    args = parser.parse_args(argv)
    print(report(measure(args.base, args.rounds, args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
