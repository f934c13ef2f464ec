"""Run the benchmark suite: ``python -m benchmarks.run [--full] [--skip SECTION]``.

Sections: inprocess, http, coldauth, scale, startup. Results are printed as a
markdown table and written to benchmarks/results/latest.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from typing import Any

from aptools.testing import FakeGlobusAuth

from . import http, scale, startup
from .contenders.common import SCOPE
from .environments import ROOT, python_for

RESULTS = ROOT / "benchmarks" / "results"
INPROCESS = {
    "aptools": ["floor", "aptools-memory", "aptools-sqlite"],
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


def report(results: dict[str, Any]) -> str:
    out = [f"# Benchmark results ({results['mode']} mode, {results['date']})", ""]
    out.append(
        "Machine and versions: "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    )
    if "inprocess" in results:
        out += [
            "",
            "## In-process cost per request (µs, median of rounds, min-max)",
            "",
            "| op | floor | aptools memory | aptools SQLite | Flask toolkit "
            "| memory/floor | SQLite/floor | toolkit/aptools SQLite |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for op, by in results["inprocess"].items():
            cell = {k: f"{v['median']} ({v['min']}-{v['max']})" for k, v in by.items()}
            floor, mem = by["floor"]["median"], by["aptools-memory"]["median"]
            sql, flask = by["aptools-sqlite"]["median"], by["flask-toolkit"]["median"]
            out.append(
                f"| {op} | {cell['floor']} | {cell['aptools-memory']} | "
                f"{cell['aptools-sqlite']} | {cell['flask-toolkit']} | "
                f"{mem / floor:.2f}x | {sql / floor:.2f}x | {flask / sql:.1f}x |"
            )
    if "http" in results:
        out += [
            "",
            "## HTTP (wrk, 16 connections, server and wrk on separate cores)",
            "",
            "| contender | server | workers | op | req/s (min-max) | p50 ms | p99 ms "
            "| errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in results["http"]:
            out.append(
                f"| {row['contender']} | {row['server']} | {row['workers']} | "
                f"{row['op']} | {row['rps']:.0f} ({row['rps_min']:.0f}-"
                f"{row['rps_max']:.0f}) | {row['p50_ms']} | {row['p99_ms']} | "
                f"{row['errors']} |"
            )
    if "coldauth" in results:
        out += [
            "",
            "## Cold authentication (50 concurrent requests, one new token, "
            f"Globus Auth answering in {results['coldauth_latency_ms']} ms)",
            "",
            "| contender | server | workers | introspections | seconds | 2xx |",
            "|---|---|---|---|---|---|",
        ]
        for row in results["coldauth"]:
            out.append(
                f"| {row['contender']} | {row['server']} | {row['workers']} | "
                f"{row['introspections']} | {row['seconds']} | {row['ok']}/50 |"
            )
    if "scale" in results:
        out += [
            "",
            "## Scale: aptools on SQLite (in-process µs, median of rounds; the "
            "sizes alternated round by round)",
            "",
            "| stored actions | status µs (min-max) | run µs (min-max) |",
            "|---|---|---|",
        ]
        for row in results["scale"]["sqlite"]:
            status_low, status_high = row["status_range"]
            run_low, run_high = row["run_range"]
            out.append(
                f"| {row['actions']:,} | {row['status_us']} ({status_low}-"
                f"{status_high}) | {row['run_us']} ({run_low}-{run_high}) |"
            )
        out.append(
            f"\nMemory store: {results['scale']['memory_bytes_per_action']} bytes "
            "per action."
        )
    if "startup" in results:
        s = results["startup"]
        out += [
            "",
            "## Start-up",
            "",
            "| | import (s) | process wall (s) | peak MiB |",
            "|---|---|---|---|",
        ]
        for name in ("aptools", "flask-toolkit"):
            row = s[name]
            out.append(
                f"| `import {row['module']}` | {row['import_s']} | "
                f"{row['process_wall_s']} | {row['peak_mib']} |"
            )
        out.append(
            f"\nBuilding the echo provider's WSGI and ASGI apps: "
            f"{s['aptools_build_ms']} ms."
        )
    checks = against_targets(results)
    if checks:
        out += [
            "",
            "## Against the targets",
            "",
            "| target | measured | |",
            "|---|---|---|",
        ]
        out += [f"| {t} | {m} | {'met' if ok else 'not met'} |" for t, m, ok in checks]
    return "\n".join(out) + "\n"


def _rps(results: dict[str, Any], contender: str, server: str, op: str) -> float:
    for row in results["http"]:
        if (row["contender"], row["server"], row["workers"], row["op"]) == (
            contender,
            server,
            1,
            op,
        ):
            return float(row["rps"])
    return float("nan")


_STORES = {"memory": "memory", "sqlite": "SQLite"}


def against_targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Each target of the suite, what this run measured, and whether it is met."""
    checks: list[tuple[str, str, bool]] = []
    ops = ("introspect", "status", "run")
    if "inprocess" in results:
        med = {
            op: {name: v["median"] for name, v in by.items()}
            for op, by in results["inprocess"].items()
        }
        limits = {
            ("introspect", "memory"): 1.5,
            ("introspect", "sqlite"): 1.5,
            ("status", "memory"): 1.5,
            ("status", "sqlite"): 1.5,
            ("run", "memory"): 2.0,
            ("run", "sqlite"): 3.0,
        }
        for (op, store), limit in limits.items():
            ratio = med[op][f"aptools-{store}"] / med[op]["floor"]
            checks.append(
                (
                    f"in-process {op}, {_STORES[store]} store: ≤ {limit}x the floor",
                    f"{ratio:.2f}x",
                    ratio <= limit,
                )
            )
        for op in ops:
            for store in ("memory", "sqlite"):
                times = med[op]["flask-toolkit"] / med[op][f"aptools-{store}"]
                checks.append(
                    (
                        f"in-process {op}, {_STORES[store]} store: ≥ 10x faster "
                        "than the Flask toolkit",
                        f"{times:.1f}x",
                        times >= 10,
                    )
                )
    if "http" in results:
        for op in ops:
            floor = _rps(results, "floor", "uvicorn", op)
            for contender in ("aptools", "aptools-memory"):
                share = _rps(results, contender, "uvicorn", op) / floor
                if math.isnan(share):  # not measured in this run
                    continue
                store = "memory" if contender.endswith("memory") else "SQLite"
                checks.append(
                    (
                        f"uvicorn 1 worker, {op}, {store} store: ≥ 80% of the "
                        "floor's req/s",
                        f"{share:.0%}",
                        share >= 0.8,
                    )
                )
        for op in ops:
            toolkit = _rps(results, "flask-toolkit", "gunicorn", op)
            times = _rps(results, "aptools", "gunicorn", op) / toolkit
            floor = _rps(results, "floor", "gunicorn", op) / toolkit
            checks.append(
                (
                    f"gunicorn 1 worker, {op}: ≥ 5x the Flask toolkit's req/s",
                    f"{times:.1f}x (the floor: {floor:.1f}x)",
                    times >= 5,
                )
            )
    if "coldauth" in results:
        checks += [
            (
                f"cold authentication, {row['server']} {row['workers']} "
                "worker(s): one introspection per new token",
                f"{row['introspections']} introspection(s), {row['ok']}/50 answered",
                row["introspections"] == 1 and row["ok"] == 50,
            )
            for row in results["coldauth"]
            if row["contender"] == "aptools"
        ]
    if "scale" in results:
        rows = results["scale"]["sqlite"]
        first, last = rows[0], rows[-1]
        ratio = last["status_us"] / first["status_us"]
        checks.append(
            (
                f"status at {last['actions']:,} stored actions within 1.3x of "
                f"{first['actions']:,}",
                f"{last['status_us']} µs vs {first['status_us']} µs ({ratio:.2f}x)",
                ratio <= 1.3,
            )
        )
    if "startup" in results:
        row = results["startup"]["aptools"]
        checks.append(
            (
                "`import aptools`: ≤ 0.35 s and ≤ 40 MiB",
                f"{row['import_s']} s, {row['peak_mib']} MiB",
                row["import_s"] <= 0.35 and row["peak_mib"] <= 40,
            )
        )
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("--full", action="store_true", help="long runs, 10^6 actions")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["inprocess", "http", "coldauth", "scale", "startup"],
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
        with tempfile.TemporaryDirectory() as tmp:
            server_env = {**env, "APTOOLS_STORE": f"sqlite:///{tmp}/http.db"}
            if "http" not in args.skip:
                print("http…", file=sys.stderr)
                shared = [
                    ("floor", "wsgi"),
                    ("floor", "asgi"),
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
