"""Start a provider's threads (job runner, housekeeping) in each serving
process: see :mod:`aptools.execution`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aptools.execution import Execution
from aptools.settings import ProviderConfigError
from aptools.signals import terminated

log = logging.getLogger("aptools.jobs")


class JobStarter:
    """Falcon middleware for both faces: starts this process's runner at its
    first request (so after gunicorn forked its workers), and under ASGI at
    the server's start-up; under ASGI it stops them at the server's shut-down
    (what SIGTERM does to running jobs: :mod:`aptools.jobs.runner`).

    A job that keeps tokens without a usable encryption key cannot run: the
    ASGI start-up fails; under WSGI it is logged at ERROR (once per process)
    and requests are served, runs refused with 503 ``ProviderMisconfigured``
    and ``/ready`` answering 503 (``aptools serve`` refuses to start
    instead)."""

    def __init__(self, execution: Execution) -> None:
        self._execution = execution
        self._told = False

    def process_request(self, req: Any, resp: Any) -> None:
        # PERF: after the first request, an attribute test and one
        # process-id comparison.
        self._serving()

    async def process_request_async(self, req: Any, resp: Any) -> None:
        self._serving()

    def _serving(self) -> None:
        try:
            self._execution.serving()
        except ProviderConfigError as exc:
            if not self._told:
                self._told = True
                log.error("background jobs cannot run here: %s", exc)

    async def process_startup(self, scope: Any, event: Any) -> None:
        self._execution.serving()

    async def process_shutdown(self, scope: Any, event: Any) -> None:
        # The ASGI server stops after SIGTERM (uvicorn re-raises it after
        # this, which skips exit hooks): jobs that are not resumable get
        # their stop_timeout to end here.
        if terminated():
            await asyncio.to_thread(self._execution.stop)
