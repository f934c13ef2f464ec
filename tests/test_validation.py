"""Validation messages say exactly what is wrong, without the caller's data
(WSGI and ASGI), and the input schema is checked when it is defined."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from aptools import Provider, ProviderConfigError, SchemaKeywordWarning
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import MakeClient

ARCHIVE = {
    "type": "object",
    "properties": {
        "root": {"type": "string"},
        "files": {"type": "array"},
        "meta": {
            "type": "object",
            "properties": {"owner": {"type": "string"}},
            "required": ["owner", "group"],
        },
    },
    "required": ["root", "files"],
}


@pytest.mark.parametrize(
    "document, message",
    [
        (
            {"request_id": "r", "body": {"files": []}},
            '$.body: is missing required property "root"',
        ),
        (
            {"request_id": "r", "body": {"root": "/x"}},
            '$.body: is missing required property "files"',
        ),
        (
            {"request_id": "r", "body": {}},
            '$.body: is missing required properties ["root", "files"]',
        ),
        (
            {"request_id": "r", "body": {"root": "/", "files": [], "meta": {}}},
            '$.body.meta: is missing required properties ["owner", "group"]',
        ),
        (
            {
                "request_id": "r",
                "body": {"root": "/", "files": [], "meta": {"owner": "o"}},
            },
            '$.body.meta: is missing required property "group"',
        ),
        (
            {"body": {"root": "/", "files": []}},
            '$: is missing required property "request_id"',
        ),
        ({}, '$: is missing required properties ["request_id", "body"]'),
        (
            {
                "request_id": "r",
                "body": {"root": "/", "files": []},
                "release_after": "30 days",
            },
            "$.release_after: must be an ISO 8601 duration such as P30D or PT1H30M",
        ),
        (
            {
                "request_id": "r",
                "body": {"root": "/", "files": []},
                "monitor_by": ["bob"],
            },
            "$.monitor_by[0]: must be a principal URN (urn:globus:auth:identity:<uuid>",
        ),
        (
            {
                "request_id": "r",
                "body": {"root": "/", "files": []},
                "deadline": "2026-02-30T00:00:00Z",
            },
            "$.deadline: the date does not exist",
        ),
        (
            {"request_id": "r", "body": {"root": "/", "files": []}, "deadline": "soon"},
            "$.deadline: not an RFC 3339 date-time",
        ),
    ],
)
@pytest.mark.parametrize("echo_input", [False, True])
def test_messages_name_exactly_what_is_wrong(
    make: MakeClient,
    alice: FakeIdentity,
    document: dict[str, Any],
    message: str,
    echo_input: bool,
) -> None:
    _, client = make(input_schema=ARCHIVE, echo_input=echo_input)
    result = client.call("POST", "/run", alice, json=document)
    assert result.status_code == 400
    description = result.json["description"]
    assert description.startswith(message), description
    assert "^P" not in description  # no regex printed
    for value in ("30 days", "bob", "soon", "2026-02-30"):
        assert value not in description


def _provider(auth: FakeGlobusAuth, schema: dict[str, Any]) -> Provider:
    return Provider(
        title="Schema check",
        scope=auth.scope,
        admin_contact="admin@example.org",
        input_schema=schema,
        store="memory:",
    )


@pytest.mark.parametrize(
    "schema, path",
    [
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string", "pattern": "(["}},
            },
            "$.properties.a.pattern",
        ),
        (
            {"type": "object", "patternProperties": {"x(": {}}},
            '$.patternProperties["x("]',
        ),
        (
            {"type": "object", "properties": {"l": {"items": [{}, {"pattern": "*"}]}}},
            "$.properties.l.items[1].pattern",
        ),
        (
            {"type": "object", "$defs": {"d": {"pattern": "a{2,1}"}}},
            "$.$defs.d.pattern",
        ),
    ],
)
def test_a_bad_regex_is_a_config_error_naming_its_path(
    auth: FakeGlobusAuth, schema: dict[str, Any], path: str
) -> None:
    with pytest.raises(ProviderConfigError) as raised:
        _provider(auth, schema)
    assert path in str(raised.value)
    assert "regular expression" in str(raised.value)


@pytest.mark.parametrize(
    "schema, path, suggestion",
    [
        (
            {"type": "object", "properties": {"n": {"type": "integer", "minimun": 1}}},
            "$.properties.n",
            "minimum",
        ),
        ({"type": "object", "requird": ["a"]}, "$", "required"),
        (
            {"type": "object", "properties": {"l": {"type": "array", "item": {}}}},
            "$.properties.l",
            "items",
        ),
        ({"type": "object", "colour": "red"}, "$", None),
    ],
)
def test_unknown_keywords_warn_at_definition(
    auth: FakeGlobusAuth, schema: dict[str, Any], path: str, suggestion: str | None
) -> None:
    with pytest.warns(SchemaKeywordWarning) as caught:
        _provider(auth, schema)
    (warning,) = caught
    text = str(warning.message)
    assert f"{path}:" in text
    if suggestion:
        assert f"did you mean {suggestion!r}" in text
    assert warning.filename == __file__  # points at the definition


def test_known_keywords_do_not_warn(auth: FakeGlobusAuth) -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "t",
        "type": "object",
        "properties": {
            # property names are not keywords
            "minimun": {"type": "integer", "minimum": 0, "examples": [1]},
            "when": {"type": "string", "format": "date-time"},
            "enum_like": {"enum": [{"colour": "red"}], "default": {"colour": "red"}},
        },
        "definitions": {"free": {"const": {"whatever": 1}}},
        "x-ui-order": ["minimun"],
        "additionalProperties": False,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _provider(auth, schema)


def test_schema_date_times_are_rfc3339(make: MakeClient, alice: FakeIdentity) -> None:
    schema = {
        "type": "object",
        "properties": {"when": {"type": "string", "format": "date-time"}},
    }
    _, client = make(input_schema=schema, run=lambda r, c: {})
    good = client.run(alice, {"when": "2026-11-30T20:58:34z"})
    assert good.status_code == 202, good.text
    bad = client.run(alice, {"when": "20261130T205834Z"}, request_id="r2")
    assert bad.status_code == 400
    assert bad.json["description"].startswith("$.body.when: not an RFC 3339")
