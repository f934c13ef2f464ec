"""What a flow author pastes: an example body and a Globus Flows ``Action`` state.

:func:`example_body` makes a body that satisfies a provider's input schema
from the schema alone; :func:`action_state` wraps it in the state a flow
definition uses to call the provider (Flows' ``Action`` state type:
``ActionUrl``, ``ActionScope``, ``Parameters``, ``ResultPath``).

>>> example_body({"type": "object", "properties": {"n": {"type": "integer",
...     "minimum": 1}}, "required": ["n"]})
{'n': 1}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["action_state", "example_body", "state_name"]

_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "someone@example.org",
    "uri": "https://example.org/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "duration": "PT1H",
}


def example_body(schema: Mapping[str, Any], *, depth: int = 0) -> Any:
    """A value that ``schema`` (a JSON Schema object) accepts, for showing.

    Taken, in order, from ``examples``, ``default``, ``const`` or ``enum``;
    else made from ``type``: an object holds its required properties (all of
    them when none is required), a number its ``minimum``, a string its
    ``format``'s example or ``"text"`` padded to ``minLength``, an array
    ``minItems`` examples of ``items``. What a schema combines with
    ``anyOf`` / ``oneOf`` takes its first choice; ``$ref`` and patterns are
    not followed (the value shown may then need editing).
    """
    for key in ("examples", "default", "const", "enum"):
        if key in schema:
            found = schema[key]
            if key in ("examples", "enum") and isinstance(found, list) and found:
                return found[0]
            if key in ("default", "const"):
                return found
    for key in ("anyOf", "oneOf", "allOf"):
        choices = schema.get(key)
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            return example_body(choices[0], depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "object":
        return _object(schema, depth)
    if kind == "array":
        items = schema.get("items")
        item = items if isinstance(items, Mapping) else {}
        return [
            example_body(item, depth=depth + 1)
            for _ in range(int(schema.get("minItems", 0)))
        ]
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "boolean":
        return False
    if kind == "string":
        text = _FORMATS.get(schema.get("format", ""), "text")
        least = int(schema.get("minLength", 0))
        return text + "x" * max(0, least - len(text))
    return None if kind == "null" else {}


def _object(schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or depth > 8:
        return {}
    required = [p for p in schema.get("required", []) if p in properties]
    names = required or list(properties)
    return {
        name: example_body(properties[name], depth=depth + 1)
        for name in names
        if isinstance(properties[name], Mapping)
    }


def _number(schema: Mapping[str, Any], kind: str) -> int | float:
    value: float = 0
    if "minimum" in schema:
        value = schema["minimum"]
    elif "exclusiveMinimum" in schema:
        value = schema["exclusiveMinimum"] + 1
    elif "maximum" in schema and schema["maximum"] < 0:
        value = schema["maximum"]
    return int(value) if kind == "integer" else value


def state_name(title: str) -> str:
    """A state name made of ``title``'s words: ``"Long job"`` -> ``"LongJob"``."""
    words = re.findall(r"[A-Za-z0-9]+", title)
    return "".join(w[:1].upper() + w[1:] for w in words) or "RunAction"


def action_state(
    action_url: str, scope: str, body: Any, *, title: str = "Run action"
) -> dict[str, Any]:
    """A one-state flow definition calling the provider at ``action_url``
    with ``body``: ``{"StartAt": name, "States": {name: {"Type": "Action",
    ...}}}``; paste the state into a flow of your own, or run it as it is."""
    name = state_name(title)
    return {
        "StartAt": name,
        "States": {
            name: {
                "Type": "Action",
                "ActionUrl": action_url,
                "ActionScope": scope,
                "Parameters": body,
                "ResultPath": f"$.{name}Result",
                "End": True,
            }
        },
    }
