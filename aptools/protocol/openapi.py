"""An OpenAPI 3.1 document generated from a provider itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from aptools.errors import status_meanings
from aptools.protocol.query import ACTION_ID_MOST
from aptools.protocol.routes import full_path
from aptools.schema import action_request_schema, action_status_schema
from aptools.vocabulary import PUBLIC

if TYPE_CHECKING:
    from aptools.protocol.routes import Route

__all__ = ["SCHEME", "openapi_document"]

#: The security scheme's name, as Globus' Registered APIs tooling names it.
SCHEME: Final = "GlobusAuth"

_REF: Final = "#/components/schemas/"


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
    body = {
        key: value
        for key, value in _rebase(dict(input_schema), _REF + "RunBody").items()
        if key != "$schema"
    }
    return {
        "RunBody": body,
        # The same schemas the run request's validator is compiled from.
        "ActionRequest": action_request_schema(_ref("RunBody")),
        "ActionStatus": action_status_schema(),
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
        "Readiness": {
            "type": "object",
            "required": ["ready"],
            "properties": {
                "ready": {"type": "boolean"},
                "code": {"type": "string"},
                "description": {"type": "string"},
            },
        },
        "JobList": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "action_id",
                    "state",
                    "attempts",
                    "held_by",
                    "lease_expires",
                ],
                "properties": {
                    "action_id": {"type": "string"},
                    "state": {
                        "type": "string",
                        "enum": ["running", "queued", "waiting", "stuck"],
                    },
                    "status": {"type": ["string", "null"]},
                    "display_status": {"type": ["string", "null"]},
                    "caller": {"type": ["string", "null"]},
                    "username": {"type": ["string", "null"]},
                    "held_by": {
                        "type": ["object", "null"],
                        "properties": {
                            "host": {"type": ["string", "null"]},
                            "pid": {"type": ["integer", "null"]},
                            "owner": {"type": "string"},
                        },
                    },
                    "lease_expires": {
                        "type": ["string", "null"],
                        "format": "date-time",
                    },
                    "lease_left": {"type": ["number", "null"]},
                    "attempts": {"type": "integer"},
                    "takeovers": {"type": "integer"},
                    "deadline": {"type": ["string", "null"], "format": "date-time"},
                    "enqueued_at": {"type": "string", "format": "date-time"},
                    "age": {"type": "number"},
                    "cancel_requested": {"type": "boolean"},
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["code", "description"],
            "properties": {
                "code": {"type": "string"},
                "description": {"type": "string"},
            },
        },
    }


# One source: the error classes say what each status means.
_ERRORS: Final = {str(status): text for status, text in status_meanings().items()}


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
    description: Mapping[str, Any],
    routes: Iterable[Route],
    prefix: str = "/",
    *,
    base_url: str = "/",
    dependent_scopes: Sequence[str] = (),
) -> dict[str, Any]:
    """The document for a provider serving ``routes`` under ``prefix``, in the
    form Globus Flows' Registered APIs take: OpenAPI 3.1, one ``servers``
    entry (``base_url``: where the paths, which hold the provider's prefix,
    are served), and on each operation a Globus Auth security requirement
    with the provider's scope.

    ``dependent_scopes``, the scopes the provider acts under for its callers
    (:attr:`aptools.Provider.dependent_scopes`), are listed, when there are
    some, in the scheme's ``x-globus-dependent-scopes``: what the provider's
    scope must depend on, and what its callers consent to.

    Each route's entry (:class:`~aptools.protocol.routes.Route`) gives its
    summary, answers, error codes and parameters; HEAD routes are left out
    (they answer as their GET does, without a body).
    """
    scope = description["globus_auth_scope"]
    public = PUBLIC in description.get("visible_to", [])
    action_id = {
        "name": "action_id",
        "in": "path",
        "required": True,
        "description": (
            "The action's id, as run answered it; any id that is not 1 to "
            f"{ACTION_ID_MOST} visible ASCII characters is answered 404."
        ),
        "schema": {"type": "string", "pattern": f"^[!-~]{{1,{ACTION_ID_MOST}}}$"},
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
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "schemas": _schemas(description.get("input_schema", {})),
            "securitySchemes": {
                SCHEME: _globus_auth(scope, description["title"], dependent_scopes)
            },
        },
    }


def _globus_auth(
    scope: str, title: str, dependent_scopes: Sequence[str] = ()
) -> dict[str, Any]:
    """Globus Auth as an OAuth 2 authorization-code scheme: the form the
    Registered APIs tooling (``globus-registered-api``) writes and checks,
    with the URLs of the Globus environment globus-sdk is configured for."""
    import globus_sdk.config

    auth = globus_sdk.config.get_service_url("auth").rstrip("/")
    extra = {"x-globus-dependent-scopes": list(dependent_scopes)}
    return {
        **(extra if dependent_scopes else {}),
        "type": "oauth2",
        "description": "A Globus Auth access token issued for the scope.",
        "flows": {
            "authorizationCode": {
                "authorizationUrl": f"{auth}/v2/oauth2/authorize",
                "tokenUrl": f"{auth}/v2/oauth2/token",
                "scopes": {scope: f"Use {title}"},
            }
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
    op["security"] = [{}] if open_to_all else [{SCHEME: [scope]}]
    if route.parameters:
        op["parameters"] = [p.openapi() for p in route.parameters]
    if route.request_body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.request_body)}},
        }
    errors = [e for e in route.errors if not (open_to_all and e in _AUTH_ERRORS)]
    op["responses"] = _answers(route.answers, errors)
    if route.name == "introspect":
        described = op["responses"]["200"]
        described["description"] += (
            " A client preferring text/html to application/json in Accept "
            "(a browser) gets the provider page instead."
        )
        described["content"]["text/html"] = {"schema": {"type": "string"}}
    return op


def _link_runs(paths: dict[str, Any]) -> None:
    """Link run's answers to every operation on the action it made."""
    targets = {
        op["operationId"]: op["operationId"]
        for path, item in paths.items()
        if "{action_id}" in path
        for method, op in item.items()
        if method not in ("parameters", "options")
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
