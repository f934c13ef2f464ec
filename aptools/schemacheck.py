"""Checks of a provider's input schema when it is defined.

A regular expression that does not compile is a
:class:`~aptools.ProviderConfigError` naming its JSON path; a keyword JSON
Schema does not know (``minimun``) is a :class:`SchemaKeywordWarning`, since
validators ignore unknown keywords and the rule it was meant to be would
silently not apply.
"""

from __future__ import annotations

import difflib
import json
import re
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Final

__all__ = ["SchemaKeywordWarning", "check_schema"]


class SchemaKeywordWarning(UserWarning):
    """An input schema uses a keyword JSON Schema does not define (a typo such
    as ``minimun``, or a keyword of another schema dialect): validation
    ignores it. Keywords starting with ``x-`` are taken as deliberate
    extensions and never warned about."""


# Every keyword of JSON Schema drafts 4 to 2020-12 (core, applicator,
# validation, meta-data, format and content vocabularies), and the annotation
# keywords OpenAPI adds to schemas.
KEYWORDS: Final = frozenset(
    [
        "$schema",
        "$id",
        "id",
        "$ref",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$recursiveRef",
        "$recursiveAnchor",
        "$vocabulary",
        "$comment",
        "$defs",
        "definitions",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "dependentSchemas",
        "dependencies",
        "prefixItems",
        "items",
        "additionalItems",
        "contains",
        "properties",
        "patternProperties",
        "additionalProperties",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "type",
        "enum",
        "const",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxContains",
        "minContains",
        "maxProperties",
        "minProperties",
        "required",
        "dependentRequired",
        "title",
        "description",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "examples",
        "format",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
        "example",
        "externalDocs",
        "xml",
        "discriminator",
    ]
)
_SCHEMA_MAPS: Final = (
    "properties",
    "patternProperties",
    "definitions",
    "$defs",
    "dependentSchemas",
    "dependencies",
)
_SCHEMA_LISTS: Final = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_SCHEMA_ONE: Final = (
    "items",
    "additionalItems",
    "additionalProperties",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
_NAME: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


def _step(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if _NAME.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def _subschemas(path: str, node: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key in _SCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, Mapping):
            where = _step(path, key)
            for name, child in children.items():
                yield _step(where, name), child
    for key in _SCHEMA_LISTS:
        children = node.get(key)
        if isinstance(children, list):
            for index, child in enumerate(children):
                yield _step(_step(path, key), index), child
    for key in _SCHEMA_ONE:
        if isinstance(node.get(key), Mapping):
            yield _step(path, key), node[key]


def _walk(path: str, node: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(node, Mapping):
        yield path, node
        for where, child in _subschemas(path, node):
            yield from _walk(where, child)


def _compiles(path: str, pattern: Any) -> None:
    if not isinstance(pattern, str):
        raise ValueError(f"input_schema {path} must be a regular expression string")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(
            f"input_schema {path} is not a valid regular expression: {exc}"
        ) from None


def check_schema(schema: Mapping[str, Any], *, stacklevel: int = 2) -> None:
    """Check an input schema's regular expressions and keywords.

    Raises :class:`ValueError` naming the JSON path (``$.properties.a.pattern``)
    of a ``pattern`` or ``patternProperties`` key that is not a regular
    expression; warns a :class:`SchemaKeywordWarning` for each unknown
    keyword, naming its path and the known keyword it is closest to.
    ``stacklevel`` is passed to :func:`warnings.warn` (2: this function's
    caller), so that the warning points at the schema's definition.
    """
    unknown: list[str] = []
    for path, node in _walk("$", schema):
        if "pattern" in node:
            _compiles(_step(path, "pattern"), node["pattern"])
        patterns = node.get("patternProperties")
        if isinstance(patterns, Mapping):
            for key in patterns:
                _compiles(_step(_step(path, "patternProperties"), key), key)
        for key in node:
            if key in KEYWORDS or key.startswith("x-"):
                continue
            close = difflib.get_close_matches(key, KEYWORDS, n=1, cutoff=0.75)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            unknown.append(
                f"input_schema {path}: unknown keyword {key!r} is ignored{hint}"
            )
    for text in unknown:
        warnings.warn(text, SchemaKeywordWarning, stacklevel=stacklevel)
