"""huey on its SQLite storage (``SqliteHuey``), as shipped.

The consumer runs in this process with ``at_once`` worker threads and its
default polling (every 0.1 s while idle, backing off by 1.15 up to 10 s);
results are not stored (``results=False``: the jobs return nothing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from huey import SqliteHuey

NAME = "huey (SqliteHuey)"
STORE = "sqlite"

_entered: list[Callable[[str], None] | None] = [None]
_done = [0]
_lock = threading.Lock()


def _huey(place: str) -> Any:
    huey = SqliteHuey("bench", filename=place, results=False)

    @huey.task(name="empty")
    def empty(key: str) -> None:
        tell = _entered[0]
        if tell is not None:
            tell(key)
        with _lock:
            _done[0] += 1

    return huey, empty


def fill(place: str, jobs: int) -> None:
    _, empty = _huey(place)
    for k in range(jobs):
        empty(str(k))


def _consumer(place: str, at_once: int) -> Any:
    huey, _ = _huey(place)
    consumer = huey.create_consumer(
        workers=at_once, worker_type="thread", periodic=False
    )
    return huey, consumer


def drain(place: str, jobs: int, at_once: int) -> float:
    _entered[0] = None
    _done[0] = 0
    _, consumer = _consumer(place, at_once)
    started = time.perf_counter()
    consumer.start()
    while _done[0] < jobs:
        time.sleep(0.0005)
    took = time.perf_counter() - started
    consumer.stop(graceful=True)
    return took


def serve(
    place: str, at_once: int, entered: Callable[[str], None]
) -> Callable[[], None]:
    _entered[0] = entered
    _, consumer = _consumer(place, at_once)
    consumer.start()

    def halt() -> None:
        consumer.stop(graceful=True)
        _entered[0] = None

    return halt


def submit(place: str, key: str) -> None:
    _, empty = _huey(place)
    empty(key)
