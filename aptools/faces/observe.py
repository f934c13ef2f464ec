"""One record per request: a structured access-log line and operator hooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aptools.logjson import bind, unbind
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
    #: The run document's ``request_id`` (run requests only).
    request_id: str | None = None


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
        context = req.context
        context.started = time.perf_counter()
        # Records logged while the request is handled carry its ids.
        context.log_context = bind(context)

    async def process_request_async(self, req: Any, resp: Any) -> None:
        self.process_request(req, resp)

    def process_response(
        self, req: Any, resp: Any, resource: Any, req_succeeded: bool
    ) -> None:
        try:
            self._record(req, resp)
        finally:
            bound = req.context.get("log_context")
            if bound is not None:
                unbind(bound)

    async def process_response_async(
        self, req: Any, resp: Any, resource: Any, req_succeeded: bool
    ) -> None:
        self.process_response(req, resp, resource, req_succeeded)

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
            request_id=context.get("request_id"),
        )
        if access_log.isEnabledFor(logging.INFO):
            fields = asdict(info)
            if route is None:
                # In the JSON format only: orjson escapes it (see logjson).
                fields["path"] = req.path
            access_log.info(
                "%s %s %s %.2fms operation=%s caller=%s action_id=%s request_id=%s",
                # The method, the unrouted path, the action id and the run's
                # request_id come from the client: quoted, so that they
                # cannot forge a line.
                quoted(info.method),
                info.route or quoted(req.path),
                info.status,
                info.duration * 1e3,
                info.operation,
                info.caller,
                None if info.action_id is None else quoted(info.action_id),
                None if info.request_id is None else quoted(info.request_id),
                extra={"aptools": fields},
            )
        for hook in self._hooks:
            try:
                hook(info)
            except Exception:
                log.exception("request hook %r failed", hook)
