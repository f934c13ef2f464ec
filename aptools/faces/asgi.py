"""The ASGI face (for uvicorn)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import falcon
import falcon.asgi
import orjson

from aptools.faces.app import JSON, _configure, _crash
from aptools.faces.drivers import drive_async
from aptools.page import PAGE_HEADERS, PAGE_TYPE, Page
from aptools.protocol import spec as core
from aptools.protocol.routes import FastPath, Route


def _asgi_responder(
    spec: core.Spec,
    route: Route,
    fast: FastPath | None = None,
) -> Callable[..., Any]:
    op, headers = route.operation, route.headers

    async def responder(
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        action_id: str | None = None,
    ) -> None:
        if action_id is not None:
            req.context.action_id = action_id
        route.read(req, action_id)  # the one rule for path and query values
        answer = None if fast is None else fast(spec, req, action_id)
        if answer is None:
            answer = await drive_async(op(spec, req, action_id))
        status, data = answer
        resp.status, resp.data = status, data
        if data:
            resp.content_type = JSON
            if type(data) is Page:  # the provider page, for a browser
                resp.data = bytes(data)  # servers want bytes, not a subclass
                resp.content_type = PAGE_TYPE
                resp.set_headers(PAGE_HEADERS)
        if headers:
            resp.set_headers(headers)

    return responder


# The versions Falcon's ASGI app takes; which of them reach it is the
# server's choice (uvicorn: 1.0 and 1.1).
_HTTP_VERSIONS: Final = frozenset({"1.0", "1.1", "2", "3"})
_VERSION_REFUSED: Final = orjson.dumps(
    {
        "code": "HTTPVersionNotSupported",
        "description": "This HTTP version is not supported here; use HTTP/1.1.",
    }
)


class _App(falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]):
    """Falcon's ASGI app, answering an HTTP version it does not take with a
    JSON 505 rather than an exception for the server to turn into a 500."""

    async def __call__(  # type: ignore[override]
        self, scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        if (
            scope.get("type") == "http"
            and scope.get("http_version", "1.1") not in _HTTP_VERSIONS
        ):
            await _refuse_version(receive, send)
            return
        if scope.get("type") == "http" and _expects_continue(scope):
            receive = _Deferred(receive)
        await super().__call__(scope, receive, send)


def _expects_continue(scope: dict[str, Any]) -> bool:
    headers = scope.get("headers", ())
    if not isinstance(headers, list | tuple):
        # The ASGI spec's headers (and each name-value pair) may be any
        # iterable, read only once: kept as a list of pairs for Falcon.
        headers = scope["headers"] = [tuple(pair) for pair in headers]
    return any(
        name == b"expect" and value.lower() == b"100-continue"
        for name, value in headers
    )


class _Deferred:
    """``receive``, but for its first call, which Falcon makes before any
    route runs: answered with an empty, unfinished body without asking the
    server. uvicorn sends ``100 Continue`` at the first ``receive``, so a
    request with ``Expect: 100-continue`` is told to send its body only once
    an operation reads it: one refused first (413 for a Content-Length over
    ``max_body_size``, 401) is answered at once, as gunicorn does, without
    the client sending the body (RFC 9110 section 10.1.1)."""

    def __init__(self, receive: Any) -> None:
        self._receive = receive
        self._first = True

    async def __call__(self) -> Any:
        if self._first:
            self._first = False
            return {"type": "http.request", "body": b"", "more_body": True}
        return await self._receive()


async def _refuse_version(receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 505,
            "headers": [
                (b"content-type", JSON.encode()),
                (b"content-length", str(len(_VERSION_REFUSED)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _VERSION_REFUSED})


def build_asgi(
    spec: core.Spec, prefix: str
) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """An ASGI app (for uvicorn) serving ``spec`` under ``prefix``.

    A request naming an HTTP version other than 1.0, 1.1, 2 or 3 is answered
    505 with a JSON error.
    """
    app = _App(media_type=JSON)
    _configure(app, spec, prefix, _asgi_responder)

    async def on_crash(
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        exc: Exception,
        params: Any,
    ) -> None:
        _crash(req, resp, exc)

    app.add_error_handler(Exception, on_crash)
    return app
