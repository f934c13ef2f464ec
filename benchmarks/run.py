"""Run the benchmark suite: ``python -m benchmarks.run [--full] [--skip SECTION]``.

Sections: inprocess, breakdown, http, coldauth, scale, startup. Results are printed as a
markdown table and written to benchmarks/results/latest.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from typing import Any

from aptools.testing import FakeGlobusAuth

from . import breakdown, http, scale, startup
from .contenders.common import SCOPE
from .environments import ROOT, python_for
from .report import report

RESULTS = ROOT / "benchmarks" / "results"
INPROCESS = {
    "aptools": ["floor", "floor-sqlite", "aptools-memory", "aptools-sqlite"],
    "flask": ["flask-toolkit"],
}


class Worker:
    """An in-process measuring worker in its contenders' virtualenv."""

    def __init__(self, contenders: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [python_for(contenders[0]), "-m", "benchmarks.inprocess", *contenders],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("in-process worker died")
        result: dict[str, Any] = json.loads(line)
        return result

    def round(self, op: str, n: int) -> dict[str, float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{op} {n}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(ordered[len(ordered) // 2], 2),
        "min": round(ordered[0], 2),
        "max": round(ordered[-1], 2),
    }


def inprocess(env: dict[str, str], rounds: int, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**env, "BENCH_SQLITE": f"sqlite:///{tmp}/inprocess.db"}
        workers = [Worker(names, env) for names in INPROCESS.values()]
        samples: dict[str, dict[str, list[float]]] = {}
        try:
            for r in range(rounds):
                for op in ("introspect", "status", "run"):
                    # Alternate which process goes first, round by round.
                    order = workers if r % 2 == 0 else workers[::-1]
                    for worker in order:
                        for name, us in worker.round(op, n).items():
                            samples.setdefault(op, {}).setdefault(name, []).append(us)
        finally:
            for worker in workers:
                worker.close()
    return {
        op: {name: _stats(v) for name, v in by.items()} for op, by in samples.items()
    }


def versions() -> dict[str, str]:
    found = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        "platform": platform.platform(),
    }
    for package in (
        "aptools",
        "falcon",
        "fastjsonschema",
        "orjson",
        "globus-sdk",
        "gunicorn",
        "uvicorn",
    ):
        found[package] = metadata.version(package)
    flask = subprocess.run(
        [
            python_for("flask-toolkit"),
            "-c",
            "from importlib import metadata as m; print(m.version("
            "'globus-action-provider-tools'), m.version('flask'),"
            " m.version('pydantic'),"
            " m.version('globus-sdk'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found.update(
        zip(
            (
                "globus-action-provider-tools",
                "flask",
                "pydantic",
                "globus-sdk (toolkit)",
            ),
            flask,
            strict=True,
        )
    )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("--full", action="store_true", help="long runs, 10^6 actions")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["inprocess", "breakdown", "http", "coldauth", "scale", "startup"],
    )
    args = parser.parse_args(argv)
    full = args.full
    auth = FakeGlobusAuth(scope=SCOPE).start()
    bench = auth.identity("bench@example.org")
    env = {
        **auth.env(),
        "BENCH_TOKEN": bench.token,
        "BENCH_SCOPE": SCOPE,
        "APTOOLS_STORE": "memory:",
    }
    os.environ.update(env)
    results: dict[str, Any] = {
        "mode": "full" if full else "quick",
        "date": time.strftime("%Y-%m-%d"),
        "versions": versions(),
    }
    started = time.monotonic()
    try:
        if "inprocess" not in args.skip:
            print("in-process…", file=sys.stderr)
            results["inprocess"] = inprocess(
                env, rounds=15 if full else 5, n=2000 if full else 300
            )
            save(results)
        if "breakdown" not in args.skip:
            print("breakdown…", file=sys.stderr)
            results["breakdown"] = breakdown.breakdown(
                bench.token, n=2000 if full else 500
            )
            save(results)
        with tempfile.TemporaryDirectory() as tmp:
            server_env = {**env, "APTOOLS_STORE": f"sqlite:///{tmp}/http.db"}
            if "http" not in args.skip:
                print("http…", file=sys.stderr)
                shared = [
                    ("floor", "wsgi"),
                    ("floor", "asgi"),
                    ("floor-sqlite", "wsgi"),
                    ("floor-sqlite", "asgi"),
                    ("floor-sqlite-thread", "asgi"),
                    ("aptools", "wsgi"),
                    ("aptools", "asgi"),
                    ("flask-toolkit", "wsgi"),
                ]
                # The memory store lives in one process: one worker only.
                configs = [(c, f, 1) for c, f in shared] + [
                    ("aptools-memory", "wsgi", 1),
                    ("aptools-memory", "asgi", 1),
                ]
                if full:
                    configs += [(c, f, 2) for c, f in shared]
                results["http"] = http.throughput(
                    auth,
                    bench.token,
                    server_env,
                    seconds=5 if full else 2,
                    configs=configs,
                    repeats=3 if full else 1,
                )
                save(results)
            if "coldauth" not in args.skip:
                print("cold authentication…", file=sys.stderr)
                results["coldauth_latency_ms"] = 50
                results["coldauth"] = http.cold_auth(
                    auth,
                    server_env,
                    [
                        ("aptools", "asgi", 1),
                        ("aptools", "wsgi", 1),
                        ("aptools", "wsgi", 2),
                        ("aptools", "asgi", 2),
                        ("flask-toolkit", "wsgi", 1),
                    ],
                    latency=0.05,
                )
                save(results)
        if "scale" not in args.skip:
            print("scale…", file=sys.stderr)
            sizes = [1_000, 100_000, 1_000_000] if full else [1_000, 10_000]
            results["scale"] = {
                "sqlite": scale.sqlite_scale(
                    sizes,
                    bench.token,
                    bench.urn,
                    n=500 if full else 200,
                    rounds=9 if full else 5,
                ),
                "memory_bytes_per_action": scale.memory_bytes_per_action(10_000),
            }
            save(results)
        if "startup" not in args.skip:
            print("start-up…", file=sys.stderr)
            results["startup"] = startup.startup(repeats=11 if full else 5)
    finally:
        auth.stop()
    results["seconds"] = round(time.monotonic() - started, 1)
    text = save(results)
    print(text)
    return 0


def save(results: dict[str, Any]) -> str:
    """Write what has been measured so far; a failed section loses only itself."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    text = report(results)
    (RESULTS / "latest.md").write_text(text)
    return text


if __name__ == "__main__":
    raise SystemExit(main())
