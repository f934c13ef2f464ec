"""The PostgreSQL floor: a queue table and the two statements a job needs.

Claim (``UPDATE ... FOR UPDATE SKIP LOCKED ... RETURNING``, one row) and end
(``DELETE``), each its own transaction in autocommit, prepared, one
connection per thread, ``at_once`` threads. No leases kept, no outcome
stored, no fencing: the least a PostgreSQL queue can spend. Waiting for work
it polls every millisecond.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg

NAME = "floor (raw statements)"
STORE = "postgresql"

_CLAIM = (
    b"UPDATE q SET owner = %s WHERE id = (SELECT id FROM q WHERE owner IS NULL"
    b" ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id, key"
)


def _connect(place: str) -> psycopg.Connection[tuple[object, ...]]:
    db = psycopg.connect(place, autocommit=True, prepare_threshold=0)
    db.execute(
        b"CREATE TABLE IF NOT EXISTS q (id bigserial PRIMARY KEY, key text, owner text)"
    )
    return db


def fill(place: str, jobs: int) -> None:
    with _connect(place) as db, db.cursor() as cur:
        cur.executemany(
            b"INSERT INTO q (key) VALUES (%s)", [(str(k),) for k in range(jobs)]
        )


def _work(
    place: str,
    stop: threading.Event,
    entered: Callable[[str], None] | None,
    idle: float,
) -> None:
    with _connect(place) as db:
        me = threading.current_thread().name
        while not stop.is_set():
            row = db.execute(_CLAIM, (me,)).fetchone()
            if row is None:
                if entered is None:
                    return
                stop.wait(idle)
                continue
            if entered is not None:
                entered(str(row[1]))
            db.execute(b"DELETE FROM q WHERE id = %s", (row[0],))


def drain(place: str, jobs: int, at_once: int) -> float:
    _connect(place).close()
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
    with _connect(place) as db:
        db.execute(b"INSERT INTO q (key) VALUES (%s)", (key,))
