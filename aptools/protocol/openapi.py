"""An OpenAPI 3.1 document generated from a provider itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from aptools.models import DURATION_PATTERN
from aptools.protocol.routes import full_path
from aptools.schema import PRINCIPAL_PATTERN

if TYPE_CHECKING:
    from aptools.protocol.routes import Route

__all__ = ["openapi_document"]

_REF: Final = "#/components/schemas/"
_STATUS_VALUES: Final = ["ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _rebase(node: Any, base: str) -> Any:
    """Point the input schema's local ``$ref``s at its place in the document."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#"):
                out[key] = base + value[1:]
            else:
                out[key] = _rebase(value, base)
        return out
    if isinstance(node, list):
        return [_rebase(item, base) for item in node]
    return node


def _schemas(input_schema: Mapping[str, Any]) -> dict[str, Any]:
    principal = {"type": "string", "pattern": PRINCIPAL_PATTERN}
    principals = {"type": "array", "items": principal, "uniqueItems": True}
    duration = {"type": "string", "pattern": DURATION_PATTERN}
    text64 = {"type": "string", "minLength": 1, "maxLength": 64}
    body = {
        key: value
        for key, value in _rebase(dict(input_schema), _REF + "RunBody").items()
        if key != "$schema"
    }
    return {
        "RunBody": body,
        "ActionRequest": {
            "type": "object",
            "required": ["request_id", "body"],
            "properties": {
                "request_id": {"type": "string", "minLength": 1, "maxLength": 1024},
                "body": _ref("RunBody"),
                "label": text64,
                "monitor_by": principals,
                "manage_by": principals,
                "allowed_clients": {"type": "array", "items": {"type": "string"}},
                "deadline": {"type": "string", "format": "date-time"},
                "release_after": duration,
            },
        },
        "ActionStatus": {
            "type": "object",
            "required": ["action_id", "status", "creator_id", "details"],
            "properties": {
                "action_id": {"type": "string"},
                "status": {"type": "string", "enum": _STATUS_VALUES},
                "creator_id": principal,
                "label": text64,
                "monitor_by": principals,
                "manage_by": principals,
                "start_time": {"type": "string", "format": "date-time"},
                "completion_time": {"type": "string", "format": "date-time"},
                "release_after": duration,
                "display_status": text64,
                "details": {"type": "object"},
            },
        },
        "ActionStatusList": {"type": "array", "items": _ref("ActionStatus")},
        "LogPage": {
            "type": "object",
            "required": ["entries", "limit", "has_next_page"],
            "properties": {
                "entries": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["time", "code", "description"],
                        "properties": {
                            "time": {"type": "string"},
                            "code": {"type": "string"},
                            "description": {"type": "string"},
                            "details": {"type": "object"},
                        },
                    },
                },
                "limit": {"type": "integer"},
                "has_next_page": {"type": "boolean"},
                "marker": {"type": "string"},
            },
        },
        "ProviderDescription": {
            "type": "object",
            "required": [
                "types",
                "api_version",
                "globus_auth_scope",
                "title",
                "admin_contact",
                "synchronous",
                "log_supported",
                "runnable_by",
            ],
            "properties": {
                "types": {"type": "array", "items": {"type": "string"}},
                "api_version": {"type": "string"},
                "globus_auth_scope": {"type": "string"},
                "title": {"type": "string"},
                "subtitle": {"type": "string"},
                "description": {"type": "string"},
                "keywords": {"type": "array", "items": {"type": "string"}},
                "visible_to": {"type": "array", "items": {"type": "string"}},
                "runnable_by": {"type": "array", "items": {"type": "string"}},
                "administered_by": {"type": "array", "items": {"type": "string"}},
                "admin_contact": {"type": "string"},
                "synchronous": {"type": "boolean"},
                "log_supported": {"type": "boolean"},
                "maximum_deadline": {"type": "string"},
                "input_schema": {"type": "object"},
                "event_types": {"type": "array", "items": {"type": "string"}},
            },
        },
        "OpenAPIDocument": {"type": "object"},
        "Error": {
            "type": "object",
            "required": ["code", "description"],
            "properties": {
                "code": {"type": "string"},
                "description": {"type": "string"},
            },
        },
    }


_ERRORS: Final = {
    "400": "The request is malformed or breaks the schema.",
    "401": "No valid bearer token for this provider's scope.",
    "403": "Authenticated, but not allowed.",
    "404": "No such action, or not visible to the caller.",
    "405": "The path does not take this method.",
    "409": "Conflicts with the action's state or an earlier request.",
    "413": "The request body is too large.",
    "422": "The request cannot be carried out.",
    "500": "The provider failed.",
    "502": "Globus Auth answered with an error.",
    "503": "Globus Auth could not be reached.",
}


def _answers(
    ok: Mapping[str, tuple[str, str | None]], errors: Iterable[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code, (text, schema) in ok.items():
        out[code] = {"description": text}
        if schema is not None:
            out[code]["content"] = {"application/json": {"schema": _ref(schema)}}
    for code in errors:
        out[code] = {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return out


def openapi_document(
    description: Mapping[str, Any], routes: Iterable[Route], prefix: str = "/"
) -> dict[str, Any]:
    """The document for a provider serving ``routes`` under ``prefix``.

    Each route's entry (:class:`~aptools.protocol.routes.Route`) gives its
    summary, answers, error codes and parameters; HEAD routes are left out
    (they answer as their GET does, without a body).
    """
    scope = description["globus_auth_scope"]
    public = "public" in description.get("visible_to", [])
    action_id = {
        "name": "action_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    paths: dict[str, Any] = {}
    for route in routes:
        if route.method == "HEAD":
            continue
        path = full_path(prefix, route.path)
        item = paths.setdefault(path, {})
        if "{action_id}" in path:
            item["parameters"] = [action_id]
        item[route.method.lower()] = _operation(route, path, scope, public)
    _link_runs(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": description["title"],
            "version": description["api_version"],
            "description": description.get("description")
            or description.get("subtitle")
            or "A Globus Action Provider.",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(description.get("input_schema", {})),
            "securitySchemes": {
                "globus_auth": {
                    "type": "oauth2",
                    "description": "A Globus Auth access token for the scope.",
                    "flows": {
                        "authorizationCode": {
                            "authorizationUrl": "https://auth.globus.org/v2/oauth2/authorize",
                            "tokenUrl": "https://auth.globus.org/v2/oauth2/token",
                            "scopes": {scope: "Use this Action Provider"},
                        }
                    },
                }
            },
        },
    }


_AUTH_ERRORS: Final = frozenset({"401", "403", "502", "503"})


def _operation(route: Route, path: str, scope: str, public: bool) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{route.name}_{_slug(path)}",
        "tags": [route.name],
        "summary": route.summary,
    }
    open_to_all = route.access == "none" or (route.access == "visible" and public)
    op["security"] = [{}] if open_to_all else [{"globus_auth": [scope]}]
    if route.parameters:
        op["parameters"] = [dict(p) for p in route.parameters]
    if route.request_body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.request_body)}},
        }
    errors = [e for e in route.errors if not (open_to_all and e in _AUTH_ERRORS)]
    op["responses"] = _answers(route.answers, errors)
    return op


def _link_runs(paths: dict[str, Any]) -> None:
    """Link run's answers to every operation on the action it made."""
    targets = {
        op["operationId"]: op["operationId"]
        for path, item in paths.items()
        if "{action_id}" in path
        for method, op in item.items()
        if method != "parameters"
    }
    links = {
        target: {
            "operationId": target,
            "parameters": {"action_id": "$response.body#/action_id"},
        }
        for target in targets
    }
    for item in paths.values():
        run = item.get("post")
        if run is not None and run["tags"] == ["run"]:
            for code in ("200", "202"):
                run["responses"][code]["links"] = links


def _slug(path: str) -> str:
    parts = [p.strip("{}") for p in path.split("/") if p]
    return "_".join(parts) or "root"
