"""Latency as the SQLite store grows; bytes per action in the memory store."""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from aptools import Action, MemoryStore, RequestKey, SQLiteStore, Stored
from aptools.models import isoformat

from .contenders.common import PREFIX, SCOPE
from .inprocess import Contender


def _action(n: int, creator: str, now: float) -> Action:
    return Action(
        action_id=str(uuid.uuid4()),
        status="SUCCEEDED",
        creator_id=creator,
        details={"you_said": f"hello {n}"},
        request_id=f"pre-{n}",
        body={"input_string": f"hello {n}"},
        start_time=isoformat(now),
        completion_time=isoformat(now),
    )


_INSERT = (
    "INSERT INTO aptools_actions (action_id, namespace, creator_id, request_id,"
    " fingerprint, reserved_at, pending, status, expires_at, public, doc)"
    " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
)


# The echo provider's store namespace (Provider's default: scope and prefix).
NAMESPACE = f"{SCOPE} {PREFIX}"


def populate(path: Path, count: int, creator: str) -> list[str]:
    """Fill a SQLite store with ``count`` finished actions in bulk."""
    SQLiteStore(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    now = time.time()
    ids: list[str] = []
    db.execute("BEGIN")
    batch = []
    for n in range(count):
        action = _action(n, creator, now)
        stored = Stored.of(action)
        ids.append(action.action_id)
        batch.append(
            (
                action.action_id,
                NAMESPACE,
                creator,
                action.request_id,
                "pre",
                now,
                action.status,
                now + 86400 * 30,
                stored.public,
                stored.doc,
            )
        )
        if len(batch) == 10_000:
            db.executemany(_INSERT, batch)
            batch.clear()
    if batch:
        db.executemany(_INSERT, batch)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return ids


def sqlite_scale(
    sizes: list[int], token: str, creator: str, n: int, rounds: int
) -> list[dict[str, Any]]:
    """Status and run at each store size, the sizes alternated round by round
    so that a slow spell of the machine falls on all of them alike."""
    from .contenders.aptools_app import build

    with tempfile.TemporaryDirectory() as tmp:
        stores = []
        for size in sizes:
            path = Path(tmp) / f"scale-{size}.db"
            started = time.perf_counter()
            ids = populate(path, size, creator)
            filled = time.perf_counter() - started
            contender = Contender(
                f"sqlite-{size}", build(f"sqlite:///{path}").wsgi(), token
            )
            sample = random.sample(ids, min(len(ids), 1000))
            stores.append((size, filled, contender, sample, [], []))
        for r in range(rounds):
            for _, _, contender, sample, status, run in (
                stores if r % 2 == 0 else stores[::-1]
            ):
                contender.action_id = random.choice(sample)
                status.append(contender.measure("status", n))
                run.append(contender.measure("run", n))
        return [
            {
                "actions": size,
                "fill_seconds": round(filled, 1),
                "status_us": _median(status),
                "status_range": [round(min(status), 1), round(max(status), 1)],
                "run_us": _median(run),
                "run_range": [round(min(run), 1), round(max(run), 1)],
            }
            for size, filled, _, _, status, run in stores
        ]


def _median(values: list[float]) -> float:
    return round(sorted(values)[len(values) // 2], 1)


def memory_bytes_per_action(count: int) -> float:
    store = MemoryStore()
    creator = "urn:globus:auth:identity:" + str(uuid.uuid4())
    now = time.time()
    actions = [_action(n, creator, now) for n in range(count)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for action in actions:
        key = RequestKey(creator, action.request_id, "f" * 64)
        store.reserve(key, action.action_id, now, 300)
        store.create(Stored.of(action), action, now + 86400)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return round((after - before) / count, 1)
