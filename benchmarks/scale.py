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

from aptools import Action, MemoryStore, SQLiteStore, Stored
from aptools.models import isoformat

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
    "INSERT INTO aptools_actions (action_id, creator_id, request_id, fingerprint,"
    " reserved_at, pending, status, expires_at, public, doc)"
    " VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
)


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
    from .contenders.aptools_app import build

    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "scale.db"
            started = time.perf_counter()
            ids = populate(path, size, creator)
            filled = time.perf_counter() - started
            contender = Contender(
                f"sqlite-{size}", build(f"sqlite:///{path}").wsgi(), token
            )
            sample = random.sample(ids, min(len(ids), 1000))
            status, run = [], []
            for _ in range(rounds):
                contender.action_id = random.choice(sample)
                status.append(contender.measure("status", n))
                run.append(contender.measure("run", n))
            rows.append(
                {
                    "actions": size,
                    "fill_seconds": round(filled, 1),
                    "status_us": round(sorted(status)[len(status) // 2], 1),
                    "run_us": round(sorted(run)[len(run) // 2], 1),
                }
            )
    return rows


def memory_bytes_per_action(count: int) -> float:
    store = MemoryStore()
    creator = "urn:globus:auth:identity:" + str(uuid.uuid4())
    now = time.time()
    actions = [_action(n, creator, now) for n in range(count)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for action in actions:
        store.reserve(creator, action.request_id, "f" * 64, action.action_id, now, 300)
        store.finish(Stored.of(action), action, now + 86400)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return round((after - before) / count, 1)
