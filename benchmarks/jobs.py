"""Background jobs: start latency, empty jobs per second, cost of a report.

    python -m benchmarks.jobs [--runs 300] [--jobs 2000]

Everything in one process, SQLite in a temporary directory, the real
globus-sdk against the fake Globus Auth (the caller's token is cached after
the first request, as in production):

- start latency: from run's 202 answered (in process, WSGI) to the job
  function entered, p50 and p99;
- empty jobs per second per process: jobs that return ``{}`` at once, already
  queued, drained by one runner (``max_jobs`` 4 and 16);
- one progress report (``Job.progress``: serialize and store the action) vs a
  raw ``UPDATE`` of the same row's documents through the same connection.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()

    import falcon.testing

    from aptools import Action, Caller, Job, Provider, SQLiteStore, Stored
    from aptools.testing import FakeGlobusAuth

    with FakeGlobusAuth() as auth, tempfile.TemporaryDirectory() as tmp:
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
                store=SQLiteStore(Path(tmp) / path),
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

            def empty(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
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
                    now,
                    None,
                    {"identity_id": alice.id, "identities": []},
                )
                store.reserve(
                    alice.urn, action.request_id, "f", action.action_id, now, 60
                )
                store.finish(Stored.of(action), action, None)
                ids.append(action.action_id)
            started = time.perf_counter()
            bench.jobs.runner()  # type: ignore[union-attr]
            left = list(ids)
            while left:
                time.sleep(0.01)
                left = [
                    a
                    for a in left
                    if (s := store.get(a, time.time())) is None or s.status == "ACTIVE"
                ]
            took = time.perf_counter() - started
            bench.jobs.shutdown()  # type: ignore[union-attr]
            print(
                f"empty jobs, max_jobs={max_jobs}: {args.jobs / took:.0f} jobs/s "
                f"({args.jobs} in {took:.2f} s, one process)"
            )

        # -- one progress report vs a raw statement ------------------------------------
        store = SQLiteStore(Path(tmp) / "progress.db")
        action = Action(
            action_id="p",
            status="ACTIVE",
            creator_id=alice.urn,
            request_id="p",
            start_time="2027-01-15T08:00:00+00:00",
            details={"done": 0, "steps": 1000},
        )
        store.reserve(alice.urn, "p", "f", "p", time.time(), 60)
        store.finish(Stored.of(action), action, None)
        queue = store.jobs()
        assert queue is not None
        handle = Job(
            action=action,
            store=store,
            queue=queue,
            owner="o",
            checkpoint=None,
            attempt=1,
        )
        rounds = 3000
        begin = time.perf_counter()
        for k in range(rounds):
            handle.progress({"done": k, "steps": 1000})
        progress_us = (time.perf_counter() - begin) / rounds * 1e6
        db = store._db()  # the same connection the store writes through
        public = orjson.dumps(action.to_public())
        doc = orjson.dumps(action.to_private())
        begin = time.perf_counter()
        for _ in range(rounds):
            db.execute(
                "UPDATE aptools_actions SET public = ?, doc = ? WHERE action_id = ?",
                (public, doc, "p"),
            )
        raw_us = (time.perf_counter() - begin) / rounds * 1e6
        print(
            f"one progress report: {progress_us:.1f} us; a raw UPDATE of the row: "
            f"{raw_us:.1f} us ({progress_us / raw_us:.2f}x)"
        )
        store.close()
        print(f"(median of latencies {statistics.median(ms):.2f} ms)")


if __name__ == "__main__":
    main()
