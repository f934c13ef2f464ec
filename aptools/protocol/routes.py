"""The route table: one declarative entry per path and method.

Each :class:`Route` says which operation answers a path and method, under
which name (the access log's ``operation``, the OpenAPI tag), what the
OpenAPI document says of it (summary, answers, error codes, query
parameters) and which constant headers (CORS) it adds. The router
(:mod:`aptools.faces.app`), the OpenAPI document
(:mod:`aptools.protocol.openapi`), the testing client and the CLI all read
:data:`ROUTES`; adding a route is one entry here plus one operation function.

Paths are relative to the provider's prefix; ``/`` is the prefix itself.
Every GET route also answers HEAD (:func:`route_table`): same status and
headers, no body. Every path answers OPTIONS by construction: 204, no body,
and ``Allow`` naming the path's methods, HEAD and OPTIONS included. CORS
headers are added only where a route declares them (the root, whose OPTIONS
is the CORS preflight of introspection).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Literal

from aptools.protocol import operations as ops
from aptools.protocol import query
from aptools.protocol import spec as core
from aptools.protocol.effects import Op
from aptools.protocol.operations.run_flat import run_in_place
from aptools.vocabulary import ACTIVE, ROLES, STATUS_ORDER

__all__ = ["ROUTES", "FastPath", "Operation", "Route", "find", "route_table"]

# Every operation is a generator over effects that returns its reply.
Operation = Callable[[core.Spec, Any, Any], Op[core.Reply]]
# A fast path answers in place, or returns None to hand over to the operation.
FastPath = Callable[[core.Spec, Any, Any], core.Reply | None]

_CORS_GET: Final[Mapping[str, str]] = MappingProxyType(
    {"Access-Control-Allow-Origin": "*"}
)
# The root answers JSON or the provider page, as the Accept header asks.
_CORS_ROOT: Final[Mapping[str, str]] = MappingProxyType(
    {"Access-Control-Allow-Origin": "*", "Vary": "Accept"}
)
_CORS_OPTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Expose-Headers": "*",
    }
)
_NONE: Final[Mapping[str, str]] = MappingProxyType({})
_UNCACHED: Final[Mapping[str, str]] = MappingProxyType({"Cache-Control": "no-store"})

_PLAIN: Final = ("401", "404", "405", "500", "502", "503")


@dataclass(frozen=True, slots=True)
class Route:
    """One path and method of the interface.

    ``answers`` maps each success status to ``(description, schema)``, where
    ``schema`` names a schema of the OpenAPI document's components (``None``:
    no body). ``access`` is ``"token"`` (a bearer token is required),
    ``"visible"`` (required unless the provider is visible to the public) or
    ``"none"``. ``requires`` names a handler without which the route is not
    served. ``api`` is the interface version whose path this is (``"both"``:
    the path is the same in 1.0 and 1.1). ``parameters`` are its query
    parameters: the faces read them with :meth:`read` before the operation
    (or ``fast``) runs, so no operation reads a query value itself. ``fast``
    is an optional fast path for the commonest case, used only with a store
    called in place; ``fast_sync`` one that may read the request body in
    place (blocking), used by the WSGI face only, with the same contract
    (``None``, before anything is read, hands over to the operation).
    """

    path: str
    method: str
    operation: Operation
    name: str
    summary: str
    answers: Mapping[str, tuple[str, str | None]]
    errors: tuple[str, ...]
    headers: Mapping[str, str] = field(default_factory=lambda: _NONE)
    access: Literal["token", "visible", "none"] = "token"
    requires: str | None = None
    api: Literal["1.0", "1.1", "both"] = "both"
    request_body: str | None = None
    parameters: tuple[query.Parameter, ...] = ()
    fast: FastPath | None = None
    fast_sync: FastPath | None = None

    def read(self, req: Any, action_id: str | None) -> None:
        """Check the path's action id (:func:`~aptools.protocol.query.action_id`,
        else 404) and read the declared query parameters into
        ``req.context.query`` (:func:`~aptools.protocol.query.read`, else 400)."""
        if action_id is not None:
            query.action_id(action_id)
        params = self.parameters
        req.context.query = query.read(req, params) if params else query.NO_QUERY


_ACTION: Final = {"200": ("The action.", "ActionStatus")}
_OPTIONS_ANSWERS: Final = {"204": ("No body; the path's methods in Allow.", None)}
_RUN_ANSWERS: Final = {
    "202": ("A new action.", "ActionStatus"),
    "200": ("The action of an identical earlier request.", "ActionStatus"),
}
_RUN_ERRORS: Final = (
    "400",
    "401",
    "403",
    "405",
    "409",
    "413",
    "422",
    "429",
    "500",
    "502",
    "503",
)
_DESCRIBE_ERRORS: Final = ("401", "403", "500", "502", "503")


_LIST_PARAMETERS: Final = (
    query.word_list(
        "status",
        STATUS_ORDER,
        ACTIVE,
        f"Comma-separated statuses from {', '.join(STATUS_ORDER)}, in any "
        "letter case (blank or absent: ACTIVE).",
    ),
    query.word_list(
        "roles",
        ROLES,
        "creator_id",
        f"Comma-separated roles from {', '.join(ROLES)}, in any letter case "
        "(blank or absent: creator_id).",
    ),
)
_LOG_PARAMETERS: Final = (
    query.number(
        "limit", 10, 1, 1000, "Entries per page, in ASCII digits (default 10)."
    ),
    query.token(
        "marker",
        "Where the page starts: the marker of the previous page, as it came "
        f"(1 to {query.TOKEN_MOST} visible ASCII characters).",
    ),
    query.token("pagination_token", "Another name of marker."),
    query.boolean(
        "reverse_order", False, "Newest entries first (true or false, any case)."
    ),
)


_JOBS_PARAMETERS: Final = (
    query.word_list(
        "state",
        ("running", "queued", "waiting", "stuck"),
        "",
        "Comma-separated states from running, queued, waiting, stuck, in any "
        "letter case (blank or absent: all).",
    ),
    query.token(
        "caller",
        "Only this caller's jobs: an identity id (or its URN) or username.",
        "an identity id (or its URN) or a username",
    ),
)


def _verb(
    name: str, method: str, op: Operation, summary: str, errors: tuple[str, ...]
) -> list[Route]:
    """An operation on one action, at its 1.0 and its 1.1 path."""
    # resume is always served: any handler or job may meet a missing consent.
    requires = "log" if name == "log" else None
    params = _LOG_PARAMETERS if name == "log" else ()
    answers = {"200": ("A page of log entries.", "LogPage")} if name == "log" else {}
    paths: tuple[tuple[str, Literal["1.0", "1.1"]], ...] = (
        (f"/{{action_id}}/{name}", "1.0"),
        (f"/actions/{{action_id}}/{name}", "1.1"),
    )
    return [
        Route(
            path,
            method,
            op,
            name,
            summary,
            answers or _ACTION,
            errors,
            requires=requires,
            api=api,
            parameters=params,
        )
        for path, api in paths
    ]


#: Every route of both interface versions.
ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/",
        "GET",
        ops.introspect,
        "introspect",
        "Describe this provider",
        {"200": ("The description.", "ProviderDescription")},
        _DESCRIBE_ERRORS,
        _CORS_ROOT,
        access="visible",
    ),
    Route(
        "/",
        "OPTIONS",
        ops.options_root,
        "options",
        "CORS preflight; the methods of this path in Allow",
        _OPTIONS_ANSWERS,
        (),
        _CORS_OPTIONS,
        access="none",
    ),
    Route(
        "/ready",
        "GET",
        ops.ready,
        "ready",
        "Whether this process can serve requests now",
        {
            "200": ("Ready: the store answers, at the expected schema.", "Readiness"),
            "503": (
                "Not ready: the store cannot be reached, or its schema is "
                "not the expected one.",
                "Readiness",
            ),
        },
        ("500",),
        _UNCACHED,
        access="none",
    ),
    Route(
        "/openapi.json",
        "GET",
        ops.openapi,
        "openapi",
        "This OpenAPI document",
        {"200": ("The OpenAPI document.", "OpenAPIDocument")},
        _DESCRIBE_ERRORS,
        _CORS_GET,
        access="visible",
    ),
    Route(
        "/run",
        "POST",
        ops.run,
        "run",
        "Start an action",
        _RUN_ANSWERS,
        _RUN_ERRORS,
        api="1.0",
        request_body="ActionRequest",
        fast_sync=run_in_place,
    ),
    Route(
        "/actions",
        "POST",
        ops.run,
        "run",
        "Start an action",
        _RUN_ANSWERS,
        _RUN_ERRORS,
        api="1.1",
        request_body="ActionRequest",
        fast_sync=run_in_place,
    ),
    Route(
        "/actions",
        "GET",
        ops.enumerate_actions,
        "enumerate",
        "List the caller's actions",
        {"200": ("Matching actions.", "ActionStatusList")},
        ("400", "401", "405", "500", "502", "503"),
        parameters=_LIST_PARAMETERS,
    ),
    Route(
        "/{action_id}/status",
        "GET",
        ops.status,
        "status",
        "An action's status",
        _ACTION,
        _PLAIN,
        api="1.0",
        fast=ops.status_in_place,
    ),
    Route(
        "/actions/{action_id}",
        "GET",
        ops.status,
        "status",
        "An action's status",
        _ACTION,
        _PLAIN,
        api="1.1",
        fast=ops.status_in_place,
    ),
    Route(
        "/actions/{action_id}",
        "DELETE",
        ops.release,
        "release",
        "Forget a finished action",
        _ACTION,
        (*_PLAIN, "409"),
        api="1.1",
    ),
    *_verb("cancel", "POST", ops.cancel, "Ask an action to stop", (*_PLAIN, "409")),
    *_verb(
        "release", "POST", ops.release, "Forget a finished action", (*_PLAIN, "409")
    ),
    *_verb("log", "GET", ops.action_log, "An action's log", ("400", *_PLAIN)),
    *_verb("resume", "POST", ops.resume, "Resume an inactive action", (*_PLAIN, "409")),
    Route(
        "/jobs",
        "GET",
        ops.jobs_listing,
        "jobs",
        "The provider's unfinished jobs (its administrators only)",
        {"200": ("The unfinished jobs, oldest first.", "JobList")},
        ("400", *_PLAIN),
        _UNCACHED,
        parameters=_JOBS_PARAMETERS,
    ),
)


def route_table(
    handlers: Collection[str], routes: Collection[Route] = ROUTES
) -> list[Route]:
    """The routes a provider with ``handlers`` serves, each GET also as HEAD,
    and every path with an OPTIONS route: 204, no body, ``Allow`` naming the
    path's methods (HEAD and OPTIONS included), and the CORS headers of a
    declared OPTIONS route (the root's) but no others."""
    served = [r for r in routes if r.requires is None or r.requires in handlers]
    heads = [replace(r, method="HEAD") for r in served if r.method == "GET"]
    methods: dict[str, set[str]] = {}
    for route in served + heads:
        methods.setdefault(route.path, {"OPTIONS"}).add(route.method)
    allowed = {path: ", ".join(sorted(verbs)) for path, verbs in methods.items()}
    declared = {r.path for r in served if r.method == "OPTIONS"}
    options = [
        _options(path, route.api)
        for path, route in {r.path: r for r in served}.items()
        if path not in declared
    ]
    return [
        replace(r, headers={**r.headers, "Allow": allowed[r.path]})
        if r.method == "OPTIONS"
        else r
        for r in served + heads + options
    ]


def _options(path: str, api: Literal["1.0", "1.1", "both"]) -> Route:
    """The OPTIONS route of a path that declares none (see :func:`route_table`).
    The path's action id is read by the one rule of every route: an
    ill-formed one is 404."""
    return Route(
        path,
        "OPTIONS",
        ops.options_root,
        "options",
        "The methods of this path, in Allow",
        _OPTIONS_ANSWERS,
        ("404",) if "{action_id}" in path else (),
        access="none",
        api=api,
    )


def find(name: str, api: str = "1.0", method: str | None = None) -> Route:
    """The route of operation ``name`` in interface version ``api``.

    ``method`` chooses between routes of one name (release is POST in 1.0,
    DELETE in 1.1). Raises ``LookupError`` if there is none.
    """
    for route in ROUTES:
        if (
            route.name == name
            and route.api in (api, "both")
            and (method is None or route.method == method)
        ):
            return route
    raise LookupError(f"no {name} route in API {api}")


def full_path(prefix: str, path: str) -> str:
    """``path`` under ``prefix`` (the root ``/`` is the prefix itself)."""
    base = prefix.rstrip("/")
    return (base + path) if path != "/" else (base or "/")
