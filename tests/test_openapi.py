"""The OpenAPI document each provider generates and serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from aptools import ProviderConfigError
from aptools.schema import action_request_schema, action_status_schema
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
    assert "/test/{action_id}/resume" in paths  # served without a handler
    assert "get" in paths["/test/actions"]  # enumerate: from the store by default
    run = paths["/test/run"]["post"]
    assert set(run["responses"]) >= {"200", "202", "400", "401", "403", "409", "413"}
    assert doc["components"]["schemas"]["RunBody"] == ECHO_SCHEMA
    flows = doc["components"]["securitySchemes"]["GlobusAuth"]["flows"]
    assert auth.scope in flows["authorizationCode"]["scopes"]
    assert run["security"] == [{"GlobusAuth": [auth.scope]}]
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


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    ]


@pytest.mark.parametrize(
    "visible_to, public",
    [(["public"], True), (["all_authenticated_users"], False), (None, False)],
)
def test_document_qualifies_for_registered_apis(
    make: MakeClient,
    alice: FakeIdentity,
    auth: FakeGlobusAuth,
    visible_to: list[str] | None,
    public: bool,
) -> None:
    """Globus Flows' Registered APIs take an OpenAPI 3.1 document with a
    server and a Globus Auth security requirement on each operation."""
    _, client = make(
        visible_to=visible_to if visible_to is not None else [alice.urn],
        log=lambda a, c, q: [],
        enumerate=lambda q, c: q.actions,
        resume=lambda a, c: None,
        public_url="https://ap.example.org/",
    )
    doc = client.call("GET", "/openapi.json", alice).json
    validate(doc)  # OpenAPI 3.1, by openapi-spec-validator
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": "https://ap.example.org"}]
    scheme = doc["components"]["securitySchemes"]["GlobusAuth"]
    code = scheme["flows"]["authorizationCode"]
    assert scheme["type"] == "oauth2"
    assert code["authorizationUrl"] == auth.url.rstrip("/") + "/v2/oauth2/authorize"
    assert code["tokenUrl"] == auth.url.rstrip("/") + "/v2/oauth2/token"
    assert list(code["scopes"]) == [auth.scope]
    seen = set()
    for path, method, op in _operations(doc):
        seen.add(op["tags"][0])
        if (
            method == "options"
            or op["tags"][0] == "ready"
            or (op["tags"][0] in ("introspect", "openapi") and public)
        ):
            assert op["security"] == [{}], (path, method)
        else:
            assert op["security"] == [{"GlobusAuth": [auth.scope]}], (path, method)
    assert seen >= {"run", "status", "cancel", "release", "log", "enumerate", "resume"}
    assert seen >= {"introspect", "openapi", "options", "ready"}


def test_public_url_setting_and_environment(
    make: MakeClient, alice: FakeIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APTOOLS_PUBLIC_URL", raising=False)
    provider, _ = make()
    assert provider.openapi()["servers"] == [{"url": "/"}]
    monkeypatch.setenv("APTOOLS_PUBLIC_URL", "https://env.example.org/base/")
    provider, client = make()
    assert provider.openapi()["servers"] == [{"url": "https://env.example.org/base"}]
    assert client.call("GET", "/openapi.json").json["servers"] == [
        {"url": "https://env.example.org/base"}
    ]
    provider, _ = make(public_url="http://127.0.0.1:8000")
    assert provider.openapi()["servers"] == [{"url": "http://127.0.0.1:8000"}]
    monkeypatch.setenv("APTOOLS_PUBLIC_URL", "ftp://nope")
    with pytest.raises(ProviderConfigError, match="APTOOLS_PUBLIC_URL"):
        make()


@pytest.mark.parametrize(
    "url",
    ["example.org", "ftp://example.org", "https://x.org/?a=1", "https://x.org/#f"],
)
def test_a_bad_public_url_fails_at_definition(make: MakeClient, url: str) -> None:
    with pytest.raises(ProviderConfigError, match="public_url"):
        make(public_url=url)


def test_one_source_for_the_run_request_schema(make: MakeClient) -> None:
    """The document describes what the validator enforces: the same schema."""
    provider, _ = make()
    request = provider.openapi()["components"]["schemas"]["ActionRequest"]
    assert request == action_request_schema({"$ref": "#/components/schemas/RunBody"})
    assert request["properties"]["deadline"] == {
        "type": "string",
        "format": "date-time",
    }
    status = provider.openapi()["components"]["schemas"]["ActionStatus"]
    assert status == action_status_schema()


def test_error_texts_come_from_the_error_classes(make: MakeClient) -> None:
    provider, _ = make()
    responses = provider.openapi()["paths"]["/test/actions"]["post"]["responses"]
    unavailable = responses["503"]["description"]
    # Both errors that answer 503 are named, from their own classes.
    assert "AuthServiceUnavailable" in unavailable
    assert "StoreUnavailable" in unavailable
    assert responses["409"]["description"].startswith("Conflict: ")


# (public_url, prefix, the provider's URL every path must resolve under)
PUBLIC_URLS = [
    ("https://ap.example.org/skeleton", "/skeleton", "https://ap.example.org/skeleton"),
    (
        "https://ap.example.org/skeleton/",
        "/skeleton",
        "https://ap.example.org/skeleton",
    ),
    ("https://ap.example.org", "/skeleton", "https://ap.example.org/skeleton"),
    ("https://ap.example.org/", "/skeleton", "https://ap.example.org/skeleton"),
    ("https://x.org/gateway", "/skeleton", "https://x.org/gateway/skeleton"),
    ("https://x.org/gateway/skeleton", "/skeleton", "https://x.org/gateway/skeleton"),
    ("https://x.org/skeleton/skeleton", "/skeleton", "https://x.org/skeleton/skeleton"),
    ("https://x.org/myskeleton", "/skeleton", "https://x.org/myskeleton/skeleton"),
    ("https://x.org/a/b", "/a/b", "https://x.org/a/b"),
    ("https://x.org/b", "/a/b", "https://x.org/b/a/b"),
    ("https://ap.example.org", "/", "https://ap.example.org"),
    ("https://ap.example.org/base", "/", "https://ap.example.org/base"),
    ("/skeleton", "/skeleton", "/skeleton"),
    ("/gateway", "/skeleton", "/gateway/skeleton"),
    (None, "/skeleton", "/skeleton"),
]


def _resolved(doc: dict[str, Any]) -> dict[str, str]:
    """Each operation's URL: ``servers[0].url`` followed by its path."""
    (server,) = doc["servers"]
    base = server["url"].rstrip("/")
    return {op["operationId"]: base + path for path, _, op in _operations(doc)}


def _check_resolved(doc: dict[str, Any], provider_url: str) -> None:
    urls = _resolved(doc)
    runs = [url for name, url in urls.items() if name.startswith("run_")]
    assert sorted(runs) == sorted([provider_url + "/actions", provider_url + "/run"])
    for name, url in urls.items():
        assert url == provider_url or url.startswith(provider_url + "/"), name
        assert "//" not in url.split("://", 1)[-1], name


@pytest.mark.parametrize(("public_url", "prefix", "provider_url"), PUBLIC_URLS)
def test_every_path_resolves_under_the_provider_s_url(
    make: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    public_url: str | None,
    prefix: str,
    provider_url: str,
) -> None:
    """``public_url`` is the provider's URL or the server's root: either way
    ``servers[0].url`` + path is the route's URL, the prefix once."""
    monkeypatch.delenv("APTOOLS_PUBLIC_URL", raising=False)
    provider, client = make(prefix=prefix, public_url=public_url)
    served = client.call("GET", "/openapi.json").json
    assert served == provider.openapi()
    validate(served)
    _check_resolved(served, provider_url)
    if public_url is not None:  # the same from the environment
        monkeypatch.setenv("APTOOLS_PUBLIC_URL", public_url)
        provider, client = make(prefix=prefix)
        _check_resolved(client.call("GET", "/openapi.json").json, provider_url)


@pytest.mark.parametrize(
    ("public_url", "provider_url"),
    [
        ("https://ap.example.org/skeleton", "https://ap.example.org/skeleton"),
        ("https://ap.example.org", "https://ap.example.org/skeleton"),
    ],
)
def test_openapi_command_resolves_under_the_provider_s_url(
    tmp_path: Path, auth: FakeGlobusAuth, public_url: str, provider_url: str
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "WATCHASAY_SCOPE": auth.scope,
        "APTOOLS_PUBLIC_URL": public_url,
    }
    done = aptools_cli(
        "openapi", "examples.watchasay.app", cwd=tmp_path, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    validate(doc)
    _check_resolved(doc, provider_url)
