"""``python -m benchmarks.queues [--jobs N] [--runs R] [--store sqlite|postgresql]``.

Each contender on empty jobs, each figure in a fresh process and a fresh
place (a SQLite file in a temporary directory, or a PostgreSQL database of
its own at ``APTOOLS_TEST_POSTGRESQL``'s server, dropped afterwards):

- jobs/s: ``--jobs`` jobs queued beforehand (by another process), drained by
  one process running 4, then 16, at once (from its consumer started, its
  set-up before that not counted);
- transactions per job (PostgreSQL): the contender database's
  ``xact_commit + xact_rollback`` over the drain (each statement in
  autocommit is one), read once the drain's process has exited;
- start latency p50/p99: from a job accepted (the accepting call returned)
  to the job function entered, for jobs accepted in the serving process and
  in another process, ``--runs`` of each, one at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

CONTENDERS = {
    "sqlite": ["aptools_sqlite", "huey_sqlite", "raw_sqlite"],
    "postgresql": ["aptools_postgresql", "procrastinate_postgresql", "raw_postgresql"],
}
PG_URL = os.environ.get(
    "APTOOLS_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _one(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.queues.one", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def _admin(statement: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        cur = conn.execute(statement.encode())
        return cur.fetchall() if cur.description else []


def _transactions(db: str) -> int:
    for _ in range(100):  # until the drain's backends have exited
        [(backends,)] = _admin(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'"
        )
        if not backends:
            break
        time.sleep(0.05)
    [(n,)] = _admin(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database"
        f" WHERE datname = '{db}'"
    )
    return int(n)  # type: ignore[call-overload]


@contextlib.contextmanager
def _place(store: str, tmp: str) -> Iterator[tuple[str, str]]:
    name = f"bench_q_{secrets.token_hex(4)}"
    if store == "sqlite":
        yield os.path.join(tmp, f"{name}.db"), ""
        return
    _admin(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_URL.rpartition("/")
    try:
        yield f"{base}/{name}", name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--store", action="append", choices=sorted(CONTENDERS))
    args = parser.parse_args()
    print(
        "| store | contender | jobs/s at 4 | at 16 | transactions/job (4 / 16) "
        "| start p50 / p99, same process | another process |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for store in args.store or ["sqlite", "postgresql"]:
            for name in CONTENDERS[store]:
                rates, per_job = [], []
                for at_once in (4, 16):
                    with _place(store, tmp) as (place, db):
                        _one(name, "fill", place, str(args.jobs))
                        before = _transactions(db) if db else 0
                        took = float(
                            _one(name, "drain", place, str(args.jobs), str(at_once))
                        )
                        rates.append(args.jobs / took)
                        if db:
                            per_job.append((_transactions(db) - before) / args.jobs)
                with _place(store, tmp) as (place, _):
                    lat = json.loads(_one(name, "latency", place, str(args.runs), "4"))
                local, remote = lat["local"][10:], lat["remote"][10:]
                tx = " / ".join(f"{x:.2f}" for x in per_job) or "—"
                print(
                    f"| {store} | {name} | {rates[0]:.0f} | {rates[1]:.0f} | {tx} "
                    f"| {_pct(local, 0.5):.2f} / {_pct(local, 0.99):.2f} ms "
                    f"| {_pct(remote, 0.5):.2f} / {_pct(remote, 0.99):.2f} ms |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
