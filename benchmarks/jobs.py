"""Background jobs: start latency, empty jobs per second, cost of a report.

    python -m benchmarks.jobs [--runs 300] [--jobs 2000] [--store sqlite|postgresql]

Everything in one process, the real globus-sdk against the fake Globus Auth
(the caller's token is cached after the first request, as in production), on
SQLite in a temporary directory or on PostgreSQL (``APTOOLS_TEST_POSTGRESQL``,
default ``postgresql://postgres@127.0.0.1:5432/test``; in a schema of its
own, dropped afterwards):

- start latency: from run's 202 answered (in process, WSGI) to the job
  function entered, p50 and p99;
- empty jobs per second per process: jobs that return ``{}`` at once, already
  queued, drained by one runner (``max_jobs`` 4 and 16);
- one progress report (``Job.progress``: serialize and store the action) vs a
  raw ``UPDATE`` of the same row's documents through the same connection
  (SQLite) or pool (PostgreSQL).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

PG_URL = os.environ.get(
    "APTOOLS_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with _stores(args.store) as new_store:
        _bench(args, new_store)


@contextlib.contextmanager
def _stores(kind: str) -> Iterator[Any]:
    """``new_store(name)``: a fresh store of ``kind`` for each figure."""
    from aptools import SQLiteStore

    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield lambda name: SQLiteStore(Path(tmp) / f"{name}.db")
        return
    import psycopg

    from aptools.store.postgresql import PostgreSQLStore

    schemas: list[str] = []

    def new_store(name: str) -> PostgreSQLStore:
        schemas.append(f"bench_jobs_{secrets.token_hex(4)}")
        sep = "&" if "?" in PG_URL else "?"
        return PostgreSQLStore(f"{PG_URL}{sep}schema={schemas[-1]}")

    try:
        yield new_store
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


def _raw_update(store: Any, public: bytes, doc: bytes) -> Any:
    """One raw statement writing the row's documents, as the store would."""
    from aptools import SQLiteStore

    if isinstance(store, SQLiteStore):
        db = store._file.connection()  # the connection the store writes through
        statement = "UPDATE aptools_actions SET public = ?, doc = ? WHERE action_id = ?"
        return lambda: db.execute(statement, (public, doc, "p"))
    schema = store._db.settings.schema
    statement = (
        f'UPDATE "{schema}".aptools_actions SET public = %s, doc = %s'
        " WHERE namespace = %s AND action_id = %s"
    ).encode()
    params = (public, doc, store.namespace, "p")
    return lambda: store._db.run(lambda conn: conn.execute(statement, params))


def _bench(args: argparse.Namespace, new_store: Any) -> None:

    import falcon.testing

    from aptools import Action, Caller, Job, Provider, RequestKey, Stored
    from aptools.testing import FakeGlobusAuth

    with FakeGlobusAuth() as auth:
        os.environ.update(auth.env())
        alice = auth.identity("alice@example.org")
        headers = {"Authorization": f"Bearer {alice.token}"}
        schema = {"type": "object"}

        def provider(path: str, work: Any, max_jobs: int = 4) -> Provider:
            made = Provider(
                title="Bench",
                scope=auth.scope,
                admin_contact="a@example.org",
                input_schema=schema,
                store=new_store(path),
                max_jobs=max_jobs,
                job_poll_interval=0.5,
                access_log=False,
            )
            made.job(work)
            return made

        # -- start latency ---------------------------------------------------------
        entered: dict[str, float] = {}
        seen = threading.Condition()

        def mark(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
            with seen:
                entered[action.action_id] = time.perf_counter()
                seen.notify_all()
            return {}

        first = provider("latency.db", mark)
        client = falcon.testing.TestClient(first.wsgi())
        latencies = []
        for k in range(args.runs):
            got = client.simulate_post(
                "/run", headers=headers, json={"request_id": f"l{k}", "body": {}}
            )
            answered = time.perf_counter()
            action_id = got.json["action_id"]
            with seen:
                seen.wait_for(lambda a=action_id: a in entered, timeout=10)
            latencies.append(entered[action_id] - answered)
        first.jobs.shutdown()  # type: ignore[union-attr]
        ms = [x * 1e3 for x in latencies[10:]]
        print(
            f"start latency (run answered -> job running), {len(ms)} runs: "
            f"p50 {_percentile(ms, 0.5):.2f} ms, p99 {_percentile(ms, 0.99):.2f} ms"
        )

        # -- empty jobs per second -------------------------------------------------
        for max_jobs in (4, 16):
            done = [0]
            all_done = threading.Event()

            def empty(
                action: Action,
                caller: Caller,
                job: Job,
                done: list[int] = done,
                all_done: threading.Event = all_done,
            ) -> dict[str, Any]:
                with seen:
                    done[0] += 1
                    if done[0] == args.jobs:
                        all_done.set()
                return {}

            bench = provider(f"empty{max_jobs}.db", empty, max_jobs)
            store = bench.store
            queue = store.jobs()
            assert queue is not None
            now = time.time()
            ids = []
            for k in range(args.jobs):
                action = Action(
                    action_id=f"{max_jobs}-{k:08d}",
                    status="ACTIVE",
                    creator_id=alice.urn,
                    request_id=f"e{k}",
                    start_time="2027-01-15T08:00:00+00:00",
                )
                queue.enqueue(
                    action.action_id,
                    None,
                    {"identity_id": alice.id, "identities": []},
                )
                key = RequestKey(alice.urn, action.request_id, "f")
                store.reserve(key, action.action_id, now, 60)
                store.create(Stored.of(action), action, None)
                ids.append(action.action_id)
            started = time.perf_counter()
            runner = bench.jobs.runner()  # type: ignore[union-attr]
            # Nothing read from the store while it drains: every job entered,
            # then the last outcomes stored (the runner's count in memory).
            all_done.wait(600)
            while runner.running:
                time.sleep(0.0005)
            took = time.perf_counter() - started
            left = [
                a
                for a in ids
                if (s := store.get(a, time.time())) is None or s.status == "ACTIVE"
            ]
            assert not left, f"{len(left)} jobs not ended"
            bench.jobs.shutdown()  # type: ignore[union-attr]
            print(
                f"empty jobs, max_jobs={max_jobs}: {args.jobs / took:.0f} jobs/s "
                f"({args.jobs} in {took:.2f} s, one process)"
            )

        # -- one progress report vs a raw statement ------------------------------------
        store = new_store("progress").for_provider("bench")
        action = Action(
            action_id="p",
            status="ACTIVE",
            creator_id=alice.urn,
            request_id="p",
            start_time="2027-01-15T08:00:00+00:00",
            details={"done": 0, "steps": 1000},
        )
        store.reserve(RequestKey(alice.urn, "p", "f"), "p", time.time(), 60)
        store.create(Stored.of(action), action, None)
        queue = store.jobs()
        assert queue is not None
        # A job claimed as a runner claims it: its writes carry the fence.
        queue.enqueue("p", None, {"identity_id": alice.id, "identities": []})
        [claimed] = queue.claim("o", 3600.0, 1)
        handle = Job(
            action=action,
            queue=queue,
            fence=claimed.fence,
            checkpoint=None,
            attempt=1,
            lease=3600.0,
        )
        rounds = 3000
        begin = time.perf_counter()
        for k in range(rounds):
            handle.progress({"done": k, "steps": 1000})
        progress_us = (time.perf_counter() - begin) / rounds * 1e6
        raw = _raw_update(
            store,
            orjson.dumps(action.to_public()),
            orjson.dumps(action.to_private()),
        )
        begin = time.perf_counter()
        for _ in range(rounds):
            raw()
        raw_us = (time.perf_counter() - begin) / rounds * 1e6
        print(
            f"one progress report ({args.store}): {progress_us:.1f} us; "
            "a raw UPDATE of the row: "
            f"{raw_us:.1f} us ({progress_us / raw_us:.2f}x)"
        )
        store.close()
        print(f"(median of latencies {statistics.median(ms):.2f} ms)")


if __name__ == "__main__":
    main()
