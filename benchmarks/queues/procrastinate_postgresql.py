"""procrastinate on PostgreSQL, as shipped.

An ``async def`` task (procrastinate runs those on its event loop; a
``def`` one would go through a thread), a worker in this process with
``concurrency=at_once``, LISTEN/NOTIFY on (its default) and its default
polling; jobs kept as ``succeeded`` (its default ``delete_jobs="never"``).
Its schema is applied in the contender's own database.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import procrastinate

NAME = "procrastinate"
STORE = "postgresql"

_entered: list[Callable[[str], None] | None] = [None]
_apps: dict[str, Any] = {}
_loops: list[asyncio.AbstractEventLoop] = []


def _app(place: str) -> Any:
    if place in _apps:
        return _apps[place]
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=place))

    @app.task(name="empty")
    async def empty(key: str) -> None:
        tell = _entered[0]
        if tell is not None:
            tell(key)

    app.empty = empty
    with app.open(), contextlib.suppress(Exception):  # applied once per database
        app.schema_manager.apply_schema()
    _apps[place] = app
    return app


def fill(place: str, jobs: int) -> None:
    app = _app(place)
    with app.open():
        for start in range(0, jobs, 500):
            app.empty.batch_defer(
                *({"key": str(k)} for k in range(start, min(jobs, start + 500)))
            )


def drain(place: str, jobs: int, at_once: int) -> float:
    app = _app(place)
    _entered[0] = None
    took: list[float] = []

    async def work() -> None:
        async with app.open_async():
            started = time.perf_counter()
            await app.run_worker_async(
                concurrency=at_once, wait=False, install_signal_handlers=False
            )
            took.append(time.perf_counter() - started)

    asyncio.run(work())
    return took[0]


def serve(
    place: str, at_once: int, entered: Callable[[str], None]
) -> Callable[[], None]:
    app = _app(place)
    _entered[0] = entered
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    task: list[asyncio.Task[None]] = []

    async def work() -> None:
        async with app.open_async():
            task.append(
                asyncio.ensure_future(
                    app.run_worker_async(
                        concurrency=at_once, wait=True, install_signal_handlers=False
                    )
                )
            )
            ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task[0]

    _loops.append(loop)
    thread = threading.Thread(target=loop.run_until_complete, args=(work(),))
    thread.start()
    ready.wait(30)
    time.sleep(0.5)  # its listener set up

    def halt() -> None:
        loop.call_soon_threadsafe(task[0].cancel)
        thread.join(30)
        _entered[0] = None
        _loops.clear()

    return halt


_opened: set[str] = set()


def submit(place: str, key: str) -> None:
    app = _app(place)
    if _loops:  # the serving process: through its open (async) connector
        future = asyncio.run_coroutine_threadsafe(
            app.empty.defer_async(key=key), _loops[0]
        )
        future.result()
        return
    if place not in _opened:  # opened once, as an application keeps it
        app.open()
        _opened.add(place)
    app.empty.defer(key=key)
