"""The SQLite floor: a queue table and the two statements a job needs.

Claim (``UPDATE ... RETURNING``, one row) and end (``DELETE``), each its own
transaction in autocommit, on one connection per thread with WAL and
``synchronous=NORMAL`` (aptools' pragmas); ``at_once`` threads. No leases
kept, no outcome stored, no fencing: the least a SQLite queue can spend.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

NAME = "floor (raw statements)"
STORE = "sqlite"

_CLAIM = (
    "UPDATE q SET owner = ? WHERE id = (SELECT id FROM q WHERE owner IS NULL"
    " ORDER BY id LIMIT 1) RETURNING id, key"
)


def _connect(place: str) -> sqlite3.Connection:
    db = sqlite3.connect(place, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.execute(
        "CREATE TABLE IF NOT EXISTS q (id INTEGER PRIMARY KEY, key TEXT, owner TEXT)"
    )
    return db


def fill(place: str, jobs: int) -> None:
    db = _connect(place)
    with db:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO q (key) VALUES (?)", [(str(k),) for k in range(jobs)]
        )
    db.close()


def _work(
    place: str,
    stop: threading.Event,
    entered: Callable[[str], None] | None,
    idle: float,
) -> None:
    db = _connect(place)
    me = threading.current_thread().name
    while not stop.is_set():
        row = db.execute(_CLAIM, (me,)).fetchone()
        if row is None:
            if entered is None:
                return
            stop.wait(idle)
            continue
        if entered is not None:
            entered(row[1])
        db.execute("DELETE FROM q WHERE id = ?", (row[0],))
    db.close()


def drain(place: str, jobs: int, at_once: int) -> float:
    stop = threading.Event()
    started = time.perf_counter()
    threads = [
        threading.Thread(target=_work, args=(place, stop, None, 0.0))
        for _ in range(at_once)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def serve(
    place: str, at_once: int, entered: Callable[[str], None]
) -> Callable[[], None]:
    _connect(place).close()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_work, args=(place, stop, entered, 0.001), daemon=True)
        for _ in range(at_once)
    ]
    for t in threads:
        t.start()

    def halt() -> None:
        stop.set()
        for t in threads:
            t.join()

    return halt


def submit(place: str, key: str) -> None:
    db = _connect(place)
    db.execute("INSERT INTO q (key) VALUES (?)", (key,))
    db.close()
