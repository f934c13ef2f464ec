"""Start a provider's threads (job runner, housekeeping) in each serving
process: see :mod:`aptools.execution`."""

from __future__ import annotations

from typing import Any

from aptools.execution import Execution


class JobStarter:
    """Falcon middleware for both faces: starts this process's runner at its
    first request (so after gunicorn forked its workers), and under ASGI at
    the server's start-up. (Running jobs are handed back when the process
    exits, see :mod:`aptools.jobs.runner`.)"""

    def __init__(self, execution: Execution) -> None:
        self._execution = execution

    def process_request(self, req: Any, resp: Any) -> None:
        # PERF: after the first request, an attribute test and one
        # process-id comparison.
        self._execution.serving()

    async def process_request_async(self, req: Any, resp: Any) -> None:
        self._execution.serving()

    async def process_startup(self, scope: Any, event: Any) -> None:
        self._execution.serving()
