"""The OpenAPI document each provider generates and serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import ECHO_SCHEMA, MakeClient
from .servers import aptools_cli


def test_served_document_is_valid_and_specific(
    make: MakeClient, alice: FakeIdentity, auth: FakeGlobusAuth
) -> None:
    provider, client = make(log=lambda a, c, q: [])
    result = client.call("GET", "/openapi.json")
    assert result.status_code == 200
    doc = result.json
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc == provider.openapi()
    paths = doc["paths"]
    assert "/test/{action_id}/log" in paths and "/test/actions/{action_id}/log" in paths
    assert "/test/{action_id}/resume" not in paths  # no resume handler
    assert "get" in paths["/test/actions"]  # enumerate: from the store by default
    run = paths["/test/run"]["post"]
    assert set(run["responses"]) >= {"200", "202", "400", "401", "403", "409", "413"}
    assert doc["components"]["schemas"]["RunBody"] == ECHO_SCHEMA
    flows = doc["components"]["securitySchemes"]["globus_auth"]["flows"]
    assert auth.scope in flows["authorizationCode"]["scopes"]
    assert run["security"] == [{"globus_auth": [auth.scope]}]
    assert paths["/test"]["get"]["security"] == [{}]  # public introspection


def test_private_provider_guards_its_document(
    make: MakeClient, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    _, client = make(visible_to=[alice.urn])
    assert client.call("GET", "/openapi.json").status_code == 401
    assert client.call("GET", "/openapi.json", bob).status_code == 403
    doc = client.call("GET", "/openapi.json", alice).json
    assert doc["paths"]["/test"]["get"]["security"] != [{}]


def test_input_schema_references_are_rebased(make: MakeClient) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "definitions": {"path": {"type": "string", "pattern": "^/"}},
        "properties": {"source": {"$ref": "#/definitions/path"}},
        "required": ["source"],
    }
    provider, _ = make(input_schema=schema)
    doc = provider.openapi()
    validate(doc)
    body = doc["components"]["schemas"]["RunBody"]
    assert body["properties"]["source"]["$ref"] == (
        "#/components/schemas/RunBody/definitions/path"
    )


def test_openapi_command_prints_the_document(tmp_path: Path) -> None:
    done = aptools_cli("openapi", "examples.countdown.app", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    validate(doc)
    assert "/countdown/actions/{action_id}/log" in doc["paths"]
    assert doc["components"]["schemas"]["RunBody"]["properties"]["seconds"] == {
        "type": "number",
        "minimum": 0,
        "maximum": 60,
    }
