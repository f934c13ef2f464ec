"""An input schema read as a table: one row per property, nested ones too."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Row", "constraints", "rows", "type_of"]

#: Nested objects deeper than this are shown as one row of type object.
MAX_DEPTH: Final = 6


@dataclass(frozen=True, slots=True)
class Row:
    """One property: its path (``options.mode``, ``files[].path``), its type
    in words, whether its parent requires it, its title and description, and
    its constraints in words."""

    path: str
    type: str
    required: bool
    description: str
    constraints: tuple[str, ...]


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def type_of(schema: Any) -> str:
    """The type of ``schema`` in words: ``string``, ``integer or null``,
    ``array of string``, ``one of: a, b`` for an ``enum`` without a type,
    ``$ref: #/...`` for a reference (not followed), ``any`` when nothing says."""
    if not isinstance(schema, Mapping):
        return "any" if schema is not False else "nothing"
    kind = schema.get("type")
    if isinstance(kind, list):
        text = " or ".join(str(k) for k in kind)
    elif isinstance(kind, str):
        text = kind
    elif "$ref" in schema:
        return f"$ref: {schema['$ref']}"
    elif "const" in schema:
        return "constant"
    elif "enum" in schema:
        return "enumeration"
    else:
        options = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(options, list) and options:
            return " or ".join(type_of(o) for o in options)
        return "any"
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        text = f"array of {type_of(schema['items'])}"
    return text


_WORDS: Final = (
    ("minimum", "at least {}"),
    ("exclusiveMinimum", "more than {}"),
    ("maximum", "at most {}"),
    ("exclusiveMaximum", "less than {}"),
    ("multipleOf", "a multiple of {}"),
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("pattern", "matches {}"),
    ("format", "format {}"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("minProperties", "at least {} properties"),
    ("maxProperties", "at most {} properties"),
    ("default", "default {}"),
)


def constraints(schema: Any) -> tuple[str, ...]:
    """The validation keywords of ``schema`` in words (``at least 1``,
    ``matches ^[a-z]+$``, ``one of: "a", "b"``), in a fixed order; values
    are shown as JSON. The text comes from the schema's author: escape it."""
    if not isinstance(schema, Mapping):
        return ()
    said = []
    for key, words in _WORDS:
        if key in schema:
            value = schema[key]
            said.append(words.format(value if key == "pattern" else _shown(value)))
    if "enum" in schema and isinstance(schema["enum"], list):
        said.append("one of: " + ", ".join(_shown(v) for v in schema["enum"]))
    if "const" in schema:
        said.append(f"exactly {_shown(schema['const'])}")
    if schema.get("uniqueItems") is True:
        said.append("items unique")
    if schema.get("additionalProperties") is False:
        said.append("no other properties")
    return tuple(said)


def _describe(schema: Any) -> str:
    if not isinstance(schema, Mapping):
        return ""
    parts = [schema.get("title"), schema.get("description")]
    return " — ".join(str(p) for p in parts if isinstance(p, str) and p)


def rows(schema: Any) -> list[Row]:
    """The properties of an object schema, depth first: nested objects'
    properties follow their parent as ``parent.child``, those of an array's
    object items as ``parent[].child`` (down to :data:`MAX_DEPTH`)."""
    return list(_rows(schema, "", 0))


def _rows(schema: Any, prefix: str, depth: int) -> Iterator[Row]:
    if not isinstance(schema, Mapping):
        return
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return
    required = schema.get("required")
    needed = set(required) if isinstance(required, list) else set()
    for name, sub in properties.items():
        path = f"{prefix}{name}"
        yield Row(path, type_of(sub), name in needed, _describe(sub), constraints(sub))
        if depth + 1 >= MAX_DEPTH or not isinstance(sub, Mapping):
            continue
        yield from _rows(sub, f"{path}.", depth + 1)
        items = sub.get("items")
        if isinstance(items, Mapping):
            yield from _rows(items, f"{path}[].", depth + 1)
