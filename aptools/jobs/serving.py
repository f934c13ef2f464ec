"""Start a provider's threads (job runner, housekeeping) in each serving
process: see :mod:`aptools.execution`."""

from __future__ import annotations

import asyncio
from typing import Any

from aptools.execution import Execution
from aptools.signals import terminated


class JobStarter:
    """Falcon middleware for both faces: starts this process's runner at its
    first request (so after gunicorn forked its workers), and under ASGI at
    the server's start-up; under ASGI it stops them at the server's shut-down
    (what SIGTERM does to running jobs: :mod:`aptools.jobs.runner`)."""

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

    async def process_shutdown(self, scope: Any, event: Any) -> None:
        # The ASGI server stops after SIGTERM (uvicorn re-raises it after
        # this, which skips exit hooks): jobs that are not resumable get
        # their stop_timeout to end here.
        if terminated():
            await asyncio.to_thread(self._execution.stop)
