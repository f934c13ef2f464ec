"""The two faces: a compiled :class:`~aptools.core.Spec` as a Falcon WSGI or
ASGI app. Each responder reads the request, drives the shared operation and
writes the reply; nothing here knows the protocol."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import falcon
import falcon.asgi
import orjson

from aptools import core
from aptools.effects import drive, drive_async
from aptools.errors import ActionProviderError
from aptools.observe import Observer, access_log
from aptools.routes import Operation, route_table

__all__ = ["build_asgi", "build_wsgi"]

log = logging.getLogger("aptools")

JSON: Final = "application/json"

_DESCRIPTIONS: Final = {
    404: "Nothing is served at this path.",
    405: "This path does not take this method; see the Allow header.",
}


def render_error(resp: Any, exc: falcon.HTTPError) -> None:
    """Write any HTTP error as ``{"code": ..., "description": ...}``."""
    phrase = falcon.code_to_http_status(exc.status_code)[4:]
    if isinstance(exc, ActionProviderError):
        code = exc.error_code
    else:
        code = "".join(word.capitalize() for word in phrase.split()) or "Error"
    description = exc.description or _DESCRIPTIONS.get(exc.status_code, phrase)
    resp.status = exc.status_code
    resp.data = orjson.dumps({"code": code, "description": description})
    resp.content_type = JSON
    if exc.headers:
        resp.set_headers(exc.headers)


def _serialize_error(req: Any, resp: Any, exc: falcon.HTTPError) -> None:
    render_error(resp, exc)


def _configure(
    app: falcon.App[Any, Any], spec: core.Spec, prefix: str, make: Callable[..., Any]
) -> None:
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(_serialize_error)
    operations = {}
    for path, methods in route_table(spec.handlers, prefix):
        resource = _Resource()
        for method, (op, headers, name) in methods.items():
            setattr(resource, f"on_{method.lower()}", make(spec, op, headers))
            operations[(path, method)] = name
        app.add_route(path, resource)
    # PERF: the observing middleware costs about 2 µs a request, so it is only
    # installed when someone listens: hooks, or the access log enabled now.
    if spec.hooks or (spec.access_log and access_log.isEnabledFor(logging.INFO)):
        app.add_middleware(Observer(operations, spec.hooks))


class _Resource:
    """Holds one route's responders as attributes, as Falcon expects."""


def _wsgi_responder(
    spec: core.Spec, op: Operation, headers: Mapping[str, str]
) -> Callable[..., None]:
    def responder(
        req: falcon.Request, resp: falcon.Response, action_id: str | None = None
    ) -> None:
        if action_id is not None:
            req.context.action_id = action_id
        answer = op(spec, req, action_id)
        status, data = answer if isinstance(answer, tuple) else drive(answer)
        resp.status, resp.data = status, data
        if data:
            resp.content_type = JSON
        if headers:
            resp.set_headers(headers)

    return responder


def _asgi_responder(
    spec: core.Spec, op: Operation, headers: Mapping[str, str]
) -> Callable[..., Any]:
    async def responder(
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        action_id: str | None = None,
    ) -> None:
        if action_id is not None:
            req.context.action_id = action_id
        answer = op(spec, req, action_id)
        status, data = (
            answer if isinstance(answer, tuple) else await drive_async(answer)
        )
        resp.status, resp.data = status, data
        if data:
            resp.content_type = JSON
        if headers:
            resp.set_headers(headers)

    return responder


def _crash(req: Any, resp: Any, exc: BaseException) -> None:
    render_error(resp, core.crash_reply(req, exc))


def build_wsgi(
    spec: core.Spec, prefix: str
) -> falcon.App[falcon.Request, falcon.Response]:
    """A WSGI app (for gunicorn) serving ``spec`` under ``prefix``."""
    app = falcon.App(media_type=JSON)
    _configure(app, spec, prefix, _wsgi_responder)

    def on_crash(
        req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any
    ) -> None:
        _crash(req, resp, exc)

    app.add_error_handler(Exception, on_crash)
    return app


def build_asgi(
    spec: core.Spec, prefix: str
) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """An ASGI app (for uvicorn) serving ``spec`` under ``prefix``."""
    app = falcon.asgi.App(media_type=JSON)
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
