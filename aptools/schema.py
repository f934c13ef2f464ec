"""The run request's schema, compiled once, and its errors made readable."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import fastjsonschema

from aptools.errors import RequestValidationError
from aptools.models import DURATION_PATTERN
from aptools.vocabulary import PRINCIPAL_PATTERN

__all__ = ["PRINCIPAL_PATTERN", "compile_request_validator", "load_schema"]


_PRINCIPALS: Final = {
    "type": "array",
    "items": {"type": "string", "pattern": PRINCIPAL_PATTERN},
    "uniqueItems": True,
}

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


def _envelope(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["request_id", "body"],
        "properties": {
            "request_id": {"type": "string", "minLength": 1, "maxLength": 1024},
            "body": body,
            "label": {"type": "string", "minLength": 1, "maxLength": 64},
            "monitor_by": _PRINCIPALS,
            "manage_by": _PRINCIPALS,
            "allowed_clients": {"type": "array", "items": {"type": "string"}},
            "deadline": {"type": "string", "minLength": 1},
            "release_after": {"type": "string", "pattern": DURATION_PATTERN},
        },
    }


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
            checks = [(fastjsonschema.compile(_envelope(body_schema)), "$")]
        else:
            # References inside the input schema resolve against its own root,
            # so it keeps a validator of its own.
            checks = [
                (fastjsonschema.compile(_envelope({"type": "object"})), "$"),
                (fastjsonschema.compile(dict(input_schema)), "$.body"),
            ]
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise ValueError(f"input_schema is not a valid JSON Schema: {exc}") from exc

    def validate(document: Any) -> Any:
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
    "required": "is missing required properties {definition}",
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


def describe(
    exc: fastjsonschema.JsonSchemaValueException,
    *,
    root: str = "$",
    echo_input: bool = False,
) -> str:
    """``$.body.n: must be at most 60 (rule 'maximum')`` from a schema error."""
    name = exc.name or "data"
    path = root + name.removeprefix("data")
    rule = exc.rule or "schema"
    if echo_input:
        text = exc.message.removeprefix(name).strip()
        return f"{path}: {text} (rule {rule!r})"
    template = _RULES.get(rule, "does not satisfy the schema")
    definition = exc.rule_definition
    if isinstance(definition, list | dict):
        shown = json.dumps(definition)
    else:
        shown = str(definition)
    # Rules quote only the schema, never the caller's value.
    return f"{path}: {template.format(definition=shown)} (rule {rule!r})"


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
