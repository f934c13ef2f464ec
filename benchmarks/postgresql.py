"""PostgreSQL rows: ``python -m benchmarks.postgresql [--rows N] [--rounds R]``.

In one process, round by round: the bare-Falcon floor, aptools on the
PostgreSQL store, and raw psycopg sending the same statements for the same
rows (prepared, binary, autocommit, on a connection set up as the store's).
The physical floor of an operation is the floor's cost plus the raw
statements'; aptools' target is at most 1.25x that. Also: statements (each
one round trip) per operation, CPU time per request of this process and of
the PostgreSQL backends serving it, and the plans of the list and purge
statements with ``--rows`` actions in the table (default 10^5; 10^6 with
``--rows 1000000``). Needs a server at APTOOLS_TEST_POSTGRESQL (default
postgresql://postgres@127.0.0.1:5432/test); works in a schema of its own,
dropped afterwards. Results: printed, and benchmarks/results/postgresql.md.

``--base DIR``: also aptools as it was in DIR (holding an ``aptools``
package, e.g. ``git archive COMMIT aptools | tar -x -C DIR``), on the same
store, in a worker process of its own, measured in the same rounds: before
and after in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from aptools.testing import FakeGlobusAuth

from .contenders.common import SCOPE

URL = os.environ.get(
    "APTOOLS_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test"
)
RESULTS = Path(__file__).parent / "results" / "postgresql.md"


class Counter:
    """Counts statements sent through psycopg cursors (one round trip each
    once prepared), by wrapping ``Cursor.execute`` (which
    ``Connection.execute`` calls)."""

    def __init__(self) -> None:
        self.count = 0
        self._execute = psycopg.Cursor.execute
        counter = self

        def execute(cursor: Any, *args: Any, **kw: Any) -> Any:
            counter.count += 1
            return counter._execute(cursor, *args, **kw)

        psycopg.Cursor.execute = execute  # type: ignore[method-assign]

    def close(self) -> None:
        psycopg.Cursor.execute = self._execute  # type: ignore[method-assign]


def backend_cpu(application_name: str) -> float:
    """CPU seconds used so far by the backends serving ``application_name``."""
    with psycopg.connect(URL, autocommit=True) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                (application_name,),
            )
        ]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


class Raw:
    """The store's statements, sent by hand: the physical floor."""

    def __init__(self, schema: str, application_name: str) -> None:
        from aptools.store.postgresql.statements import Statements

        self.sql = Statements.of(schema)
        self.conn = psycopg.connect(
            URL,
            autocommit=True,
            prepare_threshold=0,
            application_name=application_name,
        )
        self.n = 0
        self.action_id = self._run()

    def _run(self) -> str:
        self.n += 1
        action_id = str(uuid.uuid4())
        key = {
            "namespace": "",
            "action_id": action_id,
            "creator_id": "urn:globus:auth:identity:raw",
            "request_id": f"raw-{self.n}",
            "fingerprint": "f" * 64,
            "now": time.time(),
            "lease": 300.0,
        }
        self.conn.execute(self.sql.reserve, key, binary=True).fetchone()
        self.conn.execute(
            self.sql.create,
            {
                "namespace": "",
                "action_id": action_id,
                "status": "SUCCEEDED",
                "expires_at": None,
                "public": b'{"action_id":"%s","status":"SUCCEEDED"}'
                % action_id.encode(),
                "doc": b'{"request_id":"raw"}',
                "shared": [],
            },
        )
        return action_id

    def measure(self, op: str, n: int) -> float:
        started = time.perf_counter()
        if op == "status":
            params = {"namespace": "", "action_id": self.action_id, "now": time.time()}
            for _ in range(n):
                self.conn.execute(self.sql.get, params, binary=True).fetchone()
        else:
            for _ in range(n):
                self._run()
        return (time.perf_counter() - started) / n * 1e6


class Base:
    """aptools as it was in ``folder``, on the store at ``store_url``: a
    worker process (``benchmarks.inprocess``) answering one round at a time."""

    def __init__(self, folder: Path, store_url: str) -> None:
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.inprocess", "aptools-postgresql"],
            cwd=root,
            env={
                **os.environ,
                "BENCH_POSTGRESQL": store_url,
                "PYTHONPATH": f"{folder.resolve()}{os.pathsep}{root}",
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._read()

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the earlier aptools' worker died")
        return json.loads(line)

    def measure(self, op: str, n: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{op} {n}\n")
        self.proc.stdin.flush()
        return float(self._read()["aptools-postgresql"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def populate(schema: str, rows: int) -> None:
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".aptools_actions (namespace, action_id,'
            " creator_id, request_id, fingerprint, reserved_at, pending, status,"
            " expires_at, shared, public, doc)"
            " SELECT '', 'pre-' || n, 'urn:globus:auth:identity:c' || (n % 10000),"
            " 'pre-' || n, 'fp', n, false,"
            " CASE WHEN n % 4 = 0 THEN 'ACTIVE' ELSE 'SUCCEEDED' END,"
            " CASE WHEN n % 4 = 0 THEN NULL ELSE 4e9 + n END,"
            " CASE WHEN n % 10 = 0"
            " THEN ARRAY['monitor_by urn:globus:groups:id:g' || (n % 500)]"
            " ELSE '{}' END,"
            " repeat('x', 300)::bytea, repeat('y', 200)::bytea"
            f" FROM generate_series(1, {int(rows)}) AS n"
        )
        conn.execute(f'ANALYZE "{schema}".aptools_actions')


def plans(schema: str) -> dict[str, str]:
    from aptools.store.postgresql.statements import Statements

    sql = Statements.of(schema)
    params: dict[str, Any] = {
        "namespace": "",
        "now": time.time(),
        "statuses": ["ACTIVE"],
        "creators": ["urn:globus:auth:identity:c7"],
        "shared": ["monitor_by urn:globus:groups:id:g7"],
        "abandoned": time.time() - 86_400,
        "batch": 1000,
    }
    found = {}
    with psycopg.connect(URL) as conn:
        for name in (
            "list_by_creator",
            "list_by_shared",
            "list_by_both",
            "purge",
            "purge_abandoned",
        ):
            lines = conn.execute(b"EXPLAIN " + getattr(sql, name), params).fetchall()
            nodes = [
                line.strip().removeprefix("->  ").split("  (")[0]
                for (line,) in lines
                if "Scan" in line
            ]
            found[name] = "; ".join(nodes)
        conn.rollback()
    return found


def lock_waits(store_url: str, app_name: str, n: int) -> str:
    """Two hosts (stores with pools of their own) running actions of different
    request keys at once: how often is a backend of theirs waiting for a lock?
    """
    import threading

    from aptools import Action, RequestKey, Stored
    from aptools.store.postgresql import PostgreSQLStore

    hosts = [PostgreSQLStore(store_url).for_provider("locks") for _ in range(2)]

    def load(host: Any, tag: str) -> None:
        for i in range(n):
            action_id = str(uuid.uuid4())
            key = RequestKey("urn:globus:auth:identity:l", f"{tag}-{i}", "fp")
            host.reserve(key, action_id, time.time(), 300.0)
            action = Action(
                action_id=action_id,
                status="SUCCEEDED",
                creator_id=key.creator_id,
                request_id=key.request_id,
                start_time="2026-01-01T00:00:00+00:00",
            )
            host.create(Stored.of(action), action, None)

    threads = [
        threading.Thread(target=load, args=(host, f"h{i}"))
        for i, host in enumerate(hosts)
    ]
    for thread in threads:
        thread.start()
    samples = waits = 0
    with psycopg.connect(URL, autocommit=True) as conn:
        while any(thread.is_alive() for thread in threads):
            samples += 1
            row = conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE NOT l.granted AND a.application_name = %s",
                (app_name,),
            ).fetchone()
            waits += bool(row and row[0])
    for host in hosts:
        host.close()
    return (
        f"\nLock waits: two hosts running {n} actions each of different request keys"
        f" at once; a backend of theirs was waiting for a lock in {waits} of"
        f" {samples} samples of pg_locks.\n"
    )


def async_or_threads(store_url: str, schema: str, n: int) -> str:
    """What the ASGI face would gain from psycopg's async API: status reads
    by 16 concurrent tasks on one event loop, through the store in worker
    threads (what aptools does) or through an async pool of the same size."""
    import asyncio

    from psycopg_pool import AsyncConnectionPool

    from aptools.store.postgresql import PostgreSQLStore
    from aptools.store.postgresql.statements import Statements

    store = PostgreSQLStore(store_url)
    get = Statements.of(schema).get
    params = {"namespace": "", "action_id": "pre-7", "now": time.time()}
    tasks = 16

    async def threads() -> None:
        loop = asyncio.get_running_loop()

        async def worker() -> None:
            for _ in range(n // tasks):
                await loop.run_in_executor(None, store.get, "pre-7", params["now"])

        await asyncio.gather(*(worker() for _ in range(tasks)))

    async def natively() -> None:
        async with AsyncConnectionPool(
            URL,
            min_size=1,
            max_size=10,
            kwargs={"autocommit": True, "prepare_threshold": 0},
        ) as pool:

            async def worker() -> None:
                for _ in range(n // tasks):
                    async with pool.connection() as conn:
                        cur = await conn.execute(get, params, binary=True)
                        await cur.fetchone()

            await asyncio.gather(*(worker() for _ in range(tasks)))

    found: dict[str, list[tuple[float, float]]] = {"threads": [], "async": []}
    for _ in range(3):
        for name, job in (("threads", threads), ("async", natively)):
            wall, cpu = time.perf_counter(), time.process_time()
            asyncio.run(job())
            found[name].append(
                (
                    (time.perf_counter() - wall) / n * 1e6,
                    (time.process_time() - cpu) / n * 1e6,
                )
            )
    store.close()
    text = "\nStatus reads by 16 tasks on one event loop (µs per read, median of 3):"
    for name, runs in found.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        text += f" {name}: {wall:.0f} wall, {cpu:.0f} CPU;"
    return text.rstrip(";") + ".\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("-n", type=int, default=300, help="requests per round")
    parser.add_argument(
        "--base", type=Path, help="a folder holding an earlier aptools package"
    )
    args = parser.parse_args(argv)

    schema = f"aptools_bench_{secrets.token_hex(4)}"
    app_name, raw_name = f"{schema}_app", f"{schema}_raw"
    store_url = f"{URL}?schema={schema}&application_name={app_name}"
    auth = FakeGlobusAuth(scope=SCOPE).start()
    identity = auth.identity("bench@example.org")
    os.environ.update(auth.env())
    os.environ["BENCH_TOKEN"] = identity.token
    try:
        from .contenders import aptools_app
        from .inprocess import build

        floor = build("floor", identity.token)
        app = aptools_app.build(store_url)
        from .inprocess import Contender

        aptools = Contender("aptools-postgresql", app.wsgi(), identity.token)
        populate(schema, args.rows)
        raw = Raw(schema, raw_name)
        base = None
        if args.base is not None:
            base = Base(args.base, f"{URL}?schema={schema}&application_name={schema}_b")
        report = run(floor, aptools, raw, args, app_name, base)
        if base is not None:
            base.close()
        report += lock_waits(store_url, app_name, args.n)
        report += async_or_threads(store_url, schema, args.n * 4)
        report += f"\nPlans with {args.rows} actions stored:\n\n"
        for name, nodes in plans(schema).items():
            report += f"- `{name}`: {nodes}\n"
        print(report)
        RESULTS.parent.mkdir(exist_ok=True)
        # The section benchmarks.postgresql_http writes stays.
        kept = RESULTS.read_text() if RESULTS.exists() else ""
        kept = kept[kept.find("\n## Over HTTP") :] if "\n## Over HTTP" in kept else ""
        RESULTS.write_text(report.rstrip("\n") + "\n" + kept)
        app.store.close()
        raw.conn.close()
    finally:
        auth.stop()
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(
    floor: Any, aptools: Any, raw: Raw, args: Any, app_name: str, base: Base | None
) -> str:
    times: dict[tuple[str, str], list[float]] = {}
    contenders = [
        ("floor", floor.measure),
        ("raw", raw.measure),
        ("aptools", aptools.measure),
    ]
    if base is not None:
        contenders.append(("before", base.measure))
    for op in ("status", "run"):
        for _ in range(args.rounds):
            for name, measure in contenders:
                times.setdefault((name, op), []).append(measure(op, args.n))
    lines = [
        f"PostgreSQL store, in process: median µs per request of {args.rounds} rounds"
        f" of {args.n} (min-max); {args.rows} actions stored.",
        "",
        "| op | floor | raw psycopg | physical floor | aptools PostgreSQL | ratio |"
        " statements | CPU µs: this process | CPU µs: PostgreSQL |"
        + (" aptools before (--base) | before: ratio |" if base else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if base else ""),
    ]
    for op in ("status", "run"):
        med = {k[0]: statistics.median(v) for k, v in times.items() if k[1] == op}
        span = {k[0]: (min(v), max(v)) for k, v in times.items() if k[1] == op}
        physical = med["floor"] + med["raw"]
        # One more round, counted: statements, and CPU time on both sides.
        pg_before = backend_cpu(app_name)
        counter = Counter()
        cpu_before = time.process_time()
        aptools.measure(op, args.n)
        cpu = (time.process_time() - cpu_before) / args.n * 1e6
        counter.close()
        pg_cpu = (backend_cpu(app_name) - pg_before) / args.n * 1e6
        statements = counter.count / args.n

        cell = {
            name: f"{med[name]:.1f} ({span[name][0]:.1f}-{span[name][1]:.1f})"
            for name in med
        }
        lines.append(
            f"| {op} | {cell['floor']} | {cell['raw']} | {physical:.1f} |"
            f" {cell['aptools']} | {med['aptools'] / physical:.2f}x |"
            f" {statements:.2f} | {cpu:.1f} | {pg_cpu:.1f} |"
            + (f" {cell['before']} | {med['before'] / physical:.2f}x |" if base else "")
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
