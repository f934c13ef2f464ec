"""PostgreSQL over HTTP: ``python -m benchmarks.postgresql_http [--seconds S]``.

One host, then two sharing one database: each host is ``aptools serve`` (gunicorn,
one threaded worker) serving the echo provider on the PostgreSQL store, all
hosts in one schema made for the run and dropped afterwards. wrk drives
``status`` (one stored action read again and again) and ``run`` (a new
``request_id`` every time): 16 connections against one host, or two wrk
processes at once with 8 connections each, one per host.

Besides requests/s and latency, the CPU time per request of every process
taking part, read from ``/proc/<pid>/stat`` (utime + stime) before and after
each measurement: each host's processes (gunicorn's arbiter and worker), the
PostgreSQL backends serving each host (found by ``application_name``), the
PostgreSQL server's background processes, and wrk. On a machine whose cores
are shared by all of them, requests/s says how they split the cores; the CPU
per request says what a request costs each, so throughput elsewhere can be
projected (see benchmarks/README.md).

Needs wrk and a server at APTOOLS_TEST_POSTGRESQL (default
postgresql://postgres@127.0.0.1:5432/test). Results: printed, and appended to
benchmarks/results/postgresql.md (replacing the section of an earlier run).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import resource
import secrets
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import requests

from aptools.testing import FakeGlobusAuth
from aptools.testing.servers import ServerNotReady, launch, stop, wait_until_ready

from .contenders.common import PREFIX, SCOPE
from .environments import ROOT, free_port
from .http import wrk
from .postgresql import RESULTS, URL

TICKS = os.sysconf("SC_CLK_TCK")
SECTION = "## Over HTTP"
CONNECTIONS = 16
# Seconds of load before each measurement, not measured.
WARM_UP = 3

RUN_SCRIPT = """
local prefix = "{tag}"
local counter = 0
request = function()
  counter = counter + 1
  local body = '{{"request_id": "' .. prefix .. '-' .. counter ..
    '", "body": {{"input_string": "hello"}}}}'
  return wrk.format("POST", nil, nil, body)
end
"""


def cpu(pid: int) -> float:
    """CPU seconds (user + system) ``pid`` has used, 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def group(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` (a host: arbiter and worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def backends() -> dict[str, list[int]]:
    """PostgreSQL's processes by application name; background ones under
    their ``backend_type`` (walwriter, checkpointer, ...)."""
    with psycopg.connect(URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, application_name, backend_type FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid()"
        ).fetchall()
    found: dict[str, list[int]] = {}
    for pid, name, kind in rows:
        key = name if kind == "client backend" else "background"
        found.setdefault(key, []).append(pid)
    return found


class Host:
    """``aptools serve`` (gunicorn, 1 threaded worker) on the PostgreSQL store."""

    def __init__(self, name: str, store_url: str, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}{PREFIX}"
        self.env = {
            **os.environ,
            **env,
            "APTOOLS_STORE": store_url,
            "PYTHONPATH": str(ROOT),
        }
        self.proc: Any = None

    def __enter__(self) -> Host:
        command = [
            sys.executable,
            "-m",
            "aptools.cli",
            "serve",
            "benchmarks.contenders.aptools_app:provider",
            "--workers",
            "1",
            "--port",
            str(self.port),
        ]
        self.proc = launch(command, cwd=ROOT, env=self.env)
        try:
            wait_until_ready(self.proc, self.base + "/", timeout=60)
        except ServerNotReady as exc:
            self.__exit__()
            raise RuntimeError(f"host {self.name}: {exc}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def pids(self) -> list[int]:
        return group(self.proc.pid)


def snapshot(
    hosts: list[Host], app_names: dict[str, str]
) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each participant's processes, by label and pid."""
    by_name = backends()
    taken = {f"host {h.name}": {p: cpu(p) for p in h.pids()} for h in hosts}
    for host in hosts:
        pids = by_name.get(app_names[host.name], [])
        taken[f"PostgreSQL backends of {host.name}"] = {p: cpu(p) for p in pids}
    background = by_name.get("background", [])
    taken["PostgreSQL background"] = {p: cpu(p) for p in background}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    taken["wrk"] = {0: children.ru_utime + children.ru_stime}
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(f) for f in fields]
    # user nice system idle iowait irq softirq steal: busy = all but idle, iowait
    taken["machine"] = {0: (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICKS}
    return taken


def used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used in between (a process started meanwhile: all of it)."""
    return sum(taken - before.get(pid, 0.0) for pid, taken in after.items())


def measure(
    hosts: list[Host],
    app_names: dict[str, str],
    op: str,
    action_id: str,
    token: str,
    seconds: int,
) -> dict[str, Any]:
    """wrk against every host at once; requests/s, latency and CPU per request.

    A first run of ``WARM_UP`` seconds, not measured, fills the pools
    (connections and prepared statements) and the token caches.
    """
    each = CONNECTIONS // len(hosts)

    def drive(host: Host, seconds: int = seconds) -> dict[str, Any]:
        if op == "status":
            return wrk(
                f"{host.base}/{action_id}/status", token, seconds, each, None, None
            )
        tag = f"{host.name}-{secrets.token_hex(4)}"
        return wrk(
            host.base + "/run", token, seconds, each, RUN_SCRIPT.format(tag=tag), None
        )

    with ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(lambda host: drive(host, WARM_UP), hosts))
        before = snapshot(hosts, app_names)
        started = time.monotonic()
        results = list(pool.map(drive, hosts))
        elapsed = time.monotonic() - started
        after = snapshot(hosts, app_names)
    served = {h.name: r["rps"] * seconds for h, r in zip(hosts, results, strict=True)}
    total = sum(served.values())

    def per_request(label: str, count: float) -> float:
        return round(used(before[label], after[label]) / count * 1e6, 1)

    cpu_us = {}
    for host in hosts:
        for label in (f"host {host.name}", f"PostgreSQL backends of {host.name}"):
            cpu_us[label] = per_request(label, served[host.name])
    for label in ("PostgreSQL background", "wrk", "machine"):
        cpu_us[label] = per_request(label, total)
    return {
        "hosts": len(hosts),
        "op": op,
        "rps": round(total / seconds),
        "per_host": [round(r["rps"]) for r in results],
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "cpu_us": cpu_us,
        "machine_cores_busy": round(
            used(before["machine"], after["machine"]) / elapsed, 2
        ),
    }


def seed(hosts: list[Host], token: str) -> str:
    """One stored action for ``status``; every host's token cache warmed."""
    headers = {"Authorization": f"Bearer {token}"}
    made = requests.post(
        hosts[0].base + "/run",
        headers=headers,
        json={
            "request_id": f"seed-{secrets.token_hex(4)}",
            "body": {"input_string": "x"},
        },
        timeout=10,
    )
    made.raise_for_status()
    action_id = str(made.json()["action_id"])
    for host in hosts:
        for _ in range(3):
            requests.get(f"{host.base}/{action_id}/status", headers=headers, timeout=10)
    return action_id


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| hosts | op | req/s (per host) | p50 ms | p99 ms | errors "
        "| CPU µs per request it served: each host | its PostgreSQL backends "
        "| PostgreSQL background | wrk | all of these | machine cores busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cpu_us = row["cpu_us"]
        hosts = [k.removeprefix("host ") for k in cpu_us if k.startswith("host ")]
        host_cpu = " + ".join(f"{cpu_us[f'host {h}']:.0f}" for h in hosts)
        pg_cpu = " + ".join(
            f"{cpu_us[f'PostgreSQL backends of {h}']:.0f}" for h in hosts
        )
        # Per request of the whole load: each host's share weighted by its rate.
        weights = [r / sum(row["per_host"]) for r in row["per_host"]]
        whole = sum(
            w * (cpu_us[f"host {h}"] + cpu_us[f"PostgreSQL backends of {h}"])
            for w, h in zip(weights, hosts, strict=True)
        )
        whole += cpu_us["PostgreSQL background"] + cpu_us["wrk"]
        per_host = " + ".join(str(r) for r in row["per_host"])
        lines.append(
            f"| {row['hosts']} | {row['op']} | {row['rps']} ({per_host}) "
            f"| {row['p50_ms']} | {row['p99_ms']} | {row['errors']} "
            f"| {host_cpu} | {pg_cpu} | {cpu_us['PostgreSQL background']:.0f} "
            f"| {cpu_us['wrk']:.0f} | {whole:.0f} | {row['machine_cores_busy']} |"
        )
    return "\n".join(lines) + "\n"


def write(section: str) -> None:
    """Put ``section`` at the end of the results file, replacing an older one."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    text = text.split(f"\n{SECTION}", 1)[0].rstrip("\n")
    RESULTS.write_text(f"{text}\n\n{section}" if text else section)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    schema = f"aptools_bench_http_{secrets.token_hex(4)}"
    app_names = {name: f"{schema}_{name}" for name in ("a", "b")}
    auth = FakeGlobusAuth(scope=SCOPE).start()
    token = auth.identity("bench@example.org").token
    env = auth.env()
    rows = []
    try:
        for count in (1, 2):
            with contextlib.ExitStack() as stack:
                hosts = [
                    stack.enter_context(Host(name, _url(schema, app_names[name]), env))
                    for name in ("a", "b")[:count]
                ]
                action_id = seed(hosts, token)
                for op in ("status", "run"):
                    rows.append(
                        measure(hosts, app_names, op, action_id, token, args.seconds)
                    )
                    print(rows[-1], file=sys.stderr)
    finally:
        auth.stop()
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    today = datetime.date.today().isoformat()
    section = (
        f"{SECTION}, {today} (python -m benchmarks.postgresql_http"
        f" --seconds {args.seconds})\n\n"
        "Each host is `aptools serve` (gunicorn, 1 worker of 8 threads) on the"
        f" PostgreSQL store; wrk keeps {CONNECTIONS} connections in all: against one"
        f" host, or two wrk processes of {CONNECTIONS // 2} at once against two hosts"
        f" sharing the database. {args.seconds} s a row after {WARM_UP} s of the same"
        f" load unmeasured; {os.cpu_count()} cores shared by the hosts, PostgreSQL,"
        " wrk and whatever else runs on the machine. CPU µs per request from"
        " /proc/<pid>/stat (utime + stime) before and after: each host's processes"
        " and the PostgreSQL backends serving it per request that host served;"
        " PostgreSQL's background processes and wrk per request of the whole load;"
        " 'all of these' per request of the whole load. 'machine cores busy': from"
        " /proc/stat, every process on the machine included. p50 and p99: the"
        " worse host's.\n\n" + table(rows)
    )
    print(section)
    write(section)


def _url(schema: str, application_name: str) -> str:
    return f"{URL}?schema={schema}&application_name={application_name}"


if __name__ == "__main__":
    main()
