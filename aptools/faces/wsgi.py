"""The WSGI face (for gunicorn)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon
import falcon.asgi

from aptools.faces.app import JSON, _configure, _crash
from aptools.faces.drivers import drive
from aptools.page import PAGE_HEADERS, PAGE_TYPE, Page
from aptools.protocol import spec as core
from aptools.protocol.routes import FastPath, Route


def _wsgi_responder(
    spec: core.Spec,
    route: Route,
    fast: FastPath | None = None,
) -> Callable[..., None]:
    op, headers = route.operation, route.headers
    if route.fast_sync is not None and spec.store_call.in_place:
        fast = route.fast_sync  # WSGI reads the body in place

    def responder(
        req: falcon.Request, resp: falcon.Response, action_id: str | None = None
    ) -> None:
        if action_id is not None:
            req.context.action_id = action_id
        route.read(req, action_id)  # the one rule for path and query values
        answer = None if fast is None else fast(spec, req, action_id)
        if answer is None:
            answer = drive(op(spec, req, action_id))
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
