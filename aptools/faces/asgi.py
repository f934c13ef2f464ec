"""The ASGI face (for uvicorn)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import falcon
import falcon.asgi

from aptools.faces.app import JSON, _configure, _crash
from aptools.faces.drivers import drive_async
from aptools.protocol import spec as core
from aptools.protocol.routes import Operation


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
        status, data = await drive_async(op(spec, req, action_id))
        resp.status, resp.data = status, data
        if data:
            resp.content_type = JSON
        if headers:
            resp.set_headers(headers)

    return responder


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
