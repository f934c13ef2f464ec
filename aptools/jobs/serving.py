"""Start a provider's job runner in each serving process."""

from __future__ import annotations

from typing import Any

from aptools.jobs.engine import JobEngine


class JobStarter:
    """Falcon middleware for both faces: starts this process's runner at its
    first request (so after gunicorn forked its workers), and under ASGI at
    the server's start-up. (Running jobs are handed back when the process
    exits, see :mod:`aptools.jobs.runner`.)"""

    def __init__(self, engine: JobEngine) -> None:
        self._engine = engine

    def process_request(self, req: Any, resp: Any) -> None:
        # PERF: after the first request, one process-id comparison.
        self._engine.runner()

    async def process_request_async(self, req: Any, resp: Any) -> None:
        self._engine.runner()

    async def process_startup(self, scope: Any, event: Any) -> None:
        self._engine.runner()
