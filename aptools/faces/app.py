"""What both faces share: error rendering and the route set-up of a
Falcon app from a compiled :class:`~aptools.protocol.spec.Spec`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import falcon
import falcon.asgi
import orjson

from aptools.errors import ROUTING_DESCRIPTIONS, ActionProviderError
from aptools.faces.observe import Observer, access_log
from aptools.logjson import json_configured
from aptools.protocol import spec as core
from aptools.protocol.lifecycle import crash_reply
from aptools.protocol.routes import full_path, route_table

log = logging.getLogger("aptools")


JSON: Final = "application/json"


def render_error(resp: Any, exc: falcon.HTTPError) -> None:
    """Write any HTTP error as ``{"code": ..., "description": ...}``."""
    phrase = falcon.code_to_http_status(exc.status_code)[4:]
    if isinstance(exc, ActionProviderError):
        code = exc.error_code
    else:
        code = "".join(word.capitalize() for word in phrase.split()) or "Error"
    description = exc.description or ROUTING_DESCRIPTIONS.get(exc.status_code, phrase)
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
    resources: dict[str, _Resource] = {}
    for route in route_table(spec.handlers):
        path = full_path(prefix, route.path)
        resource = resources.setdefault(path, _Resource())
        fast = route.fast if spec.store_call.in_place else None
        responder = make(spec, route, fast)
        setattr(resource, f"on_{route.method.lower()}", responder)
        operations[(path, route.method)] = route.name
    for path, resource in resources.items():
        app.add_route(path, resource)
    if spec.telemetry is not None:
        # First in, last out: the access record is made inside the span.
        app.add_middleware(spec.telemetry.middleware(operations))
    # PERF: the observing middleware costs about 2 µs a request, so it is only
    # installed when someone listens: hooks, the access log enabled now, or
    # JSON logs (whose records carry the request's ids).
    if (
        spec.hooks
        or (spec.access_log and access_log.isEnabledFor(logging.INFO))
        or json_configured()
    ):
        app.add_middleware(Observer(operations, spec.hooks))


class _Resource:
    """Holds one route's responders as attributes, as Falcon expects."""


def _crash(req: Any, resp: Any, exc: BaseException) -> None:
    render_error(resp, crash_reply(req, exc))
