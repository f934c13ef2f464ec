"""One record per request: a structured access-log line and operator hooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aptools.logtext import quoted

__all__ = ["Observer", "RequestInfo"]

access_log = logging.getLogger("aptools.access")
log = logging.getLogger("aptools")


@dataclass(slots=True, frozen=True)
class RequestInfo:
    """What an operator may know of a finished request (never a token or body).

    ``operation`` is ``run``, ``status``, ``cancel``, ``release``, ``log``,
    ``resume``, ``enumerate``, ``introspect``, ``openapi``, ``ready`` or
    ``options``, and
    ``None`` when no route matched.
    """

    method: str
    route: str | None
    operation: str | None
    status: int
    duration: float
    caller: str | None
    action_id: str | None


Hook = Callable[[RequestInfo], None]


class Observer:
    """Falcon middleware for both faces: times each request, then logs it on
    ``aptools.access`` (at INFO) and hands it to every hook."""

    def __init__(
        self, operations: Mapping[tuple[str, str], str], hooks: Sequence[Hook]
    ) -> None:
        self._operations = operations
        self._hooks = tuple(hooks)

    def process_request(self, req: Any, resp: Any) -> None:
        req.context.started = time.perf_counter()

    async def process_request_async(self, req: Any, resp: Any) -> None:
        req.context.started = time.perf_counter()

    def process_response(
        self, req: Any, resp: Any, resource: Any, req_succeeded: bool
    ) -> None:
        self._record(req, resp)

    async def process_response_async(
        self, req: Any, resp: Any, resource: Any, req_succeeded: bool
    ) -> None:
        self._record(req, resp)

    def _record(self, req: Any, resp: Any) -> None:
        context = req.context
        started = context.get("started")
        duration = time.perf_counter() - started if started else 0.0
        route = req.uri_template
        caller = context.get("caller")
        info = RequestInfo(
            method=req.method,
            route=route,
            operation=self._operations.get((route, req.method)) if route else None,
            status=resp.status_code,
            duration=duration,
            caller=caller.identity_urn if caller is not None else None,
            action_id=context.get("action_id"),
        )
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "%s %s %s %.2fms operation=%s caller=%s action_id=%s",
                # The method, the unrouted path and the action id come from
                # the client: quoted, so that they cannot forge a line.
                quoted(info.method),
                info.route or quoted(req.path),
                info.status,
                info.duration * 1e3,
                info.operation,
                info.caller,
                None if info.action_id is None else quoted(info.action_id),
                extra={"aptools": asdict(info)},
            )
        for hook in self._hooks:
            try:
                hook(info)
            except Exception:
                log.exception("request hook %r failed", hook)
