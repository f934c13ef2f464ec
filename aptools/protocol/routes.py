"""The route table: which operation answers which path and method."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from aptools.protocol import operations as ops
from aptools.protocol import spec as core
from aptools.protocol.effects import Op

__all__ = ["Operation", "Route", "route_table"]

# Every operation is a generator over effects that returns its reply.
Operation = Callable[[core.Spec, Any, Any], Op[core.Reply]]
#: path -> method -> (operation, constant headers, operation name)
Route = tuple[str, Mapping[str, tuple[Operation, Mapping[str, str], str]]]

_CORS_GET: Final = {"Access-Control-Allow-Origin": "*"}
_CORS_OPTIONS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Expose-Headers": "*",
}
_NONE: Final[Mapping[str, str]] = {}


def route_table(handlers: Collection[str], prefix: str) -> list[Route]:
    """Every route of both API versions that a provider with ``handlers`` serves."""
    table: dict[str, dict[str, tuple[Operation, Mapping[str, str], str]]] = {
        "/": {
            "GET": (ops.introspect, _CORS_GET, "introspect"),
            "OPTIONS": (ops.options_root, _CORS_OPTIONS, "options"),
        },
        "/openapi.json": {"GET": (ops.openapi, _CORS_GET, "openapi")},
        "/run": {"POST": (ops.run, _NONE, "run")},
        "/actions": {"POST": (ops.run, _NONE, "run")},
        "/{action_id}/status": {"GET": (ops.status, _NONE, "status")},
        "/actions/{action_id}": {
            "GET": (ops.status, _NONE, "status"),
            "DELETE": (ops.release, _NONE, "release"),
        },
    }
    if "enumerate" in handlers:
        table["/actions"]["GET"] = (ops.enumerate_actions, _NONE, "enumerate")
    verbs: list[tuple[str, str, Operation]] = [
        ("cancel", "POST", ops.cancel),
        ("release", "POST", ops.release),
    ]
    if "log" in handlers:
        verbs.append(("log", "GET", ops.action_log))
    if "resume" in handlers:
        verbs.append(("resume", "POST", ops.resume))
    for name, method, op in verbs:
        table[f"/{{action_id}}/{name}"] = {method: (op, _NONE, name)}
        table[f"/actions/{{action_id}}/{name}"] = {method: (op, _NONE, name)}
    base = prefix.rstrip("/")
    return [
        ((base + path) if path != "/" else (base or "/"), methods)
        for path, methods in table.items()
    ]
