"""The run request's schema, compiled once, and its errors made readable."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from copy import deepcopy
from pathlib import Path
from typing import Any, Final

import fastjsonschema

from aptools.errors import RequestValidationError
from aptools.models import DURATION_PATTERN
from aptools.times import parse_datetime
from aptools.vocabulary import PRINCIPAL_PATTERN, STATUS_ORDER

__all__ = [
    "PRINCIPAL_PATTERN",
    "action_request_schema",
    "action_status_schema",
    "compile_request_validator",
    "load_schema",
]


# The interface's documents, defined once: the run request's validator and
# the OpenAPI document are both built from these.
PRINCIPAL: Final = {"type": "string", "pattern": PRINCIPAL_PATTERN}
_PRINCIPALS: Final = {"type": "array", "items": PRINCIPAL, "uniqueItems": True}
DURATION: Final = {"type": "string", "pattern": DURATION_PATTERN}
#: Text without U+0000, which SQL stores' text columns cannot hold (ECMA 262
#: and Python regular expressions both read the escape).
NO_NUL_PATTERN: Final = "^[^\\u0000]*$"
DATE_TIME: Final = {"type": "string", "format": "date-time"}
_TEXT64: Final = {"type": "string", "minLength": 1, "maxLength": 64}

Validator = Callable[[Any], Any]


def load_schema(schema: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """An input schema from a dict, a JSON text, or a path to a .json file."""
    if isinstance(schema, Mapping):
        loaded: Any = dict(schema)
    elif not isinstance(schema, str | Path):
        raise ValueError("input_schema must be a JSON object, JSON text or a path")
    elif isinstance(schema, Path) or not schema.lstrip().startswith("{"):
        path = Path(schema)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read input_schema file {path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"input_schema file {path} is not JSON: {exc}") from exc
    else:
        try:
            loaded = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise ValueError(f"input_schema is not valid JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ValueError("input_schema must be a JSON object")
    kind = loaded.get("type", "object")
    if kind != "object" and not (isinstance(kind, list) and "object" in kind):
        raise ValueError('input_schema must describe an object ("type": "object")')
    return loaded


def action_request_schema(body: Mapping[str, Any]) -> dict[str, Any]:
    """The run request (the interface's action request) with ``body`` as the
    schema of its body. Unknown top-level keys are accepted (PROTOCOL.md)."""
    return {
        "type": "object",
        "required": ["request_id", "body"],
        "properties": {
            "request_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1024,
                "pattern": NO_NUL_PATTERN,
            },
            "body": dict(body),
            "label": dict(_TEXT64),
            "monitor_by": deepcopy(_PRINCIPALS),
            "manage_by": deepcopy(_PRINCIPALS),
            "allowed_clients": {"type": "array", "items": {"type": "string"}},
            "deadline": dict(DATE_TIME),
            "release_after": dict(DURATION),
        },
    }


def action_status_schema() -> dict[str, Any]:
    """The action status document every operation on an action answers."""
    return {
        "type": "object",
        "required": ["action_id", "status", "creator_id", "details"],
        "properties": {
            "action_id": {"type": "string"},
            "status": {"type": "string", "enum": list(STATUS_ORDER)},
            "creator_id": dict(PRINCIPAL),
            "label": dict(_TEXT64),
            "monitor_by": deepcopy(_PRINCIPALS),
            "manage_by": deepcopy(_PRINCIPALS),
            "start_time": dict(DATE_TIME),
            "completion_time": dict(DATE_TIME),
            "release_after": dict(DURATION),
            "display_status": dict(_TEXT64),
            "details": {"type": "object"},
        },
    }


def _is_date_time(value: Any) -> bool:
    try:
        parse_datetime(value)
    except (TypeError, ValueError):
        return False
    return True


# "date-time" in any schema (the envelope's deadline, a provider's own
# properties) means RFC 3339 §5.6, checked as strictly as deadline.
_FORMATS: Final = {"date-time": _is_date_time}


def _uses_refs(node: Any) -> bool:
    if isinstance(node, dict):
        return "$ref" in node or any(_uses_refs(v) for v in node.values())
    if isinstance(node, list):
        return any(_uses_refs(v) for v in node)
    return False


def compile_request_validator(
    input_schema: Mapping[str, Any], *, echo_input: bool = False
) -> Validator:
    """One callable that checks a whole run request, body included.

    It raises :class:`~aptools.RequestValidationError` naming the JSON path
    and the rule broken; the offending value is quoted only with
    ``echo_input``.
    """
    body_schema = {"allOf": [{"type": "object"}, dict(input_schema)]}
    try:
        if not _uses_refs(input_schema):
            # PERF: one generated function checks envelope and body together.
            checks = [
                (
                    fastjsonschema.compile(
                        action_request_schema(body_schema), formats=_FORMATS
                    ),
                    "$",
                )
            ]
        else:
            # References inside the input schema resolve against its own root,
            # so it keeps a validator of its own.
            checks = [
                (
                    fastjsonschema.compile(
                        action_request_schema({"type": "object"}), formats=_FORMATS
                    ),
                    "$",
                ),
                (
                    fastjsonschema.compile(dict(input_schema), formats=_FORMATS),
                    "$.body",
                ),
            ]
    except (fastjsonschema.JsonSchemaDefinitionException, re.error) as exc:
        raise ValueError(f"input_schema is not a valid JSON Schema: {exc}") from exc

    body_check = None
    if len(checks) == 1:
        body_check = fastjsonschema.compile(body_schema, formats=_FORMATS)

    def validate(document: Any) -> Any:
        # PERF: the common request, a request_id and a body, needs only the
        # body checked: the envelope's rules for request_id (a string of 1 to
        # 1,024 characters, no NUL) are checked here by hand, as the
        # schema states them. A fault found is reported by the whole check.
        # Half the instructions (callgrind, the echo provider's document:
        # 10,500 against 20,500 a call).
        if body_check is not None and type(document) is dict and len(document) == 2:
            given = document.get("request_id")
            body = document.get("body")
            if (
                type(given) is str
                and 0 < len(given) <= 1024
                and "\x00" not in given
                and body is not None
            ):
                try:
                    body_check(body)
                except fastjsonschema.JsonSchemaValueException:
                    pass
                else:
                    return document
        for check, root in checks:
            try:
                check(document if root == "$" else document["body"])
            except fastjsonschema.JsonSchemaValueException as exc:
                raise RequestValidationError(
                    describe(exc, root=root, echo_input=echo_input)
                ) from None
        return document

    return validate


_RULES: Final = {
    "type": "must be of type {definition}",
    "additionalProperties": "must not contain additional properties",
    "minLength": "must be at least {definition} characters long",
    "maxLength": "must be at most {definition} characters long",
    "minItems": "must have at least {definition} items",
    "maxItems": "must have at most {definition} items",
    "uniqueItems": "must not contain duplicate items",
    "pattern": "must match the pattern {definition}",
    "enum": "must be one of {definition}",
    "const": "must be {definition}",
    "minimum": "must be at least {definition}",
    "maximum": "must be at most {definition}",
    "exclusiveMinimum": "must be greater than {definition}",
    "exclusiveMaximum": "must be less than {definition}",
    "multipleOf": "must be a multiple of {definition}",
    "format": "must be a valid {definition}",
}

# What the interface's own patterns and formats look like, in words.
_SAYS: Final = {
    ("pattern", DURATION_PATTERN): (
        "must be an ISO 8601 duration such as P30D or PT1H30M"
    ),
    ("pattern", NO_NUL_PATTERN): "must not contain the NUL character (U+0000)",
    ("pattern", PRINCIPAL_PATTERN): (
        "must be a principal URN (urn:globus:auth:identity:<uuid> or "
        "urn:globus:groups:id:<uuid>)"
    ),
}


def _missing(exc: fastjsonschema.JsonSchemaValueException) -> str:
    required = exc.rule_definition or []
    present = exc.value if isinstance(exc.value, dict) else {}
    # Names from the schema's list, never from the caller's document.
    missing = [name for name in required if name not in present] or required
    if len(missing) == 1:
        return f"is missing required property {json.dumps(missing[0])}"
    return f"is missing required properties {json.dumps(missing)}"


def _date_time_fault(value: Any) -> str:
    try:
        parse_datetime(value)
    except ValueError as exc:
        return str(exc)  # says what is wrong, without quoting the value
    except TypeError:
        pass
    return "must be an RFC 3339 date-time"


def describe(
    exc: fastjsonschema.JsonSchemaValueException,
    *,
    root: str = "$",
    echo_input: bool = False,
) -> str:
    """``$.body.n: must be at most 60 (rule 'maximum')`` from a schema error.

    A missing property is named alone (``$.body: is missing required
    property "root"``); the interface's own patterns are said in words. The
    caller's value is quoted only with ``echo_input``.
    """
    name = exc.name or "data"
    path = root + name.removeprefix("data")
    rule = exc.rule or "schema"
    definition = exc.rule_definition
    said = _SAYS.get((rule, definition)) if isinstance(definition, str) else None
    if rule == "required":
        text = _missing(exc)
    elif (rule, definition) == ("format", "date-time"):
        text = _date_time_fault(exc.value)
    elif said is not None:
        text = said
    elif echo_input:
        text = exc.message.removeprefix(name).strip()
    else:
        template = _RULES.get(rule, "does not satisfy the schema")
        if isinstance(definition, list | dict):
            shown = json.dumps(definition)
        else:
            shown = str(definition)
        # Rules quote only the schema, never the caller's value.
        text = template.format(definition=shown)
    return f"{path}: {text} (rule {rule!r})"


def example_for(schema: Mapping[str, Any]) -> Any:
    """A small value that satisfies simple schemas, for documentation.

    It uses ``examples``, ``default``, ``const`` or ``enum`` where given and
    otherwise fills the required properties with values within their bounds.
    """
    for key in ("examples", "default", "const", "enum"):
        if key in schema:
            value = schema[key]
            return value[0] if key in ("examples", "enum") and value else value
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0] if kind else "object"
    if kind == "object":
        props = schema.get("properties", {})
        return {
            name: example_for(props.get(name, {}))
            for name in schema.get("required", [])
        }
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [example_for(schema.get("items", {})) for _ in range(count)]
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 10))
        value = min(max(5, low), high)
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = "hello"
    least = int(schema.get("minLength", 0))
    return (text * (least // len(text) + 1))[: max(least, len(text))]
