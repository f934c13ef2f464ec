"""Defining a provider: misuse fails when the module loads, never at request time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aptools import ActionRequest, Caller, MemoryStore, Provider, ProviderConfigError
from aptools.testing import FakeGlobusAuth, ProviderClient

from .conftest import ECHO_SCHEMA


def _provider(auth: FakeGlobusAuth, **kw: Any) -> Provider:
    settings: dict[str, Any] = {
        "title": "T",
        "scope": auth.scope,
        "admin_contact": "a@example.org",
        "input_schema": ECHO_SCHEMA,
        "store": MemoryStore(),
    }
    settings.update(kw)
    return Provider(**settings)


def test_decorators_return_the_function_unchanged(auth: FakeGlobusAuth) -> None:
    provider = _provider(auth)

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        return {}

    assert provider.run(run) is run
    assert provider.handlers["run"] is run


def test_missing_run_handler_fails_at_build(auth: FakeGlobusAuth) -> None:
    provider = _provider(auth, title="Nameless")
    with pytest.raises(ProviderConfigError, match="no run handler"):
        provider.wsgi()
    with pytest.raises(ProviderConfigError, match="no run handler"):
        provider.asgi()


def test_registering_twice_names_the_first(auth: FakeGlobusAuth) -> None:
    provider = _provider(auth)

    @provider.status
    def first(action: Any, caller: Any) -> None: ...

    with pytest.raises(ProviderConfigError, match=r"already registered.*first"):

        @provider.status
        def second(action: Any, caller: Any) -> None: ...


def test_registering_after_build_fails(auth: FakeGlobusAuth) -> None:
    provider = _provider(auth)
    provider.run(lambda request, caller: {})
    provider.wsgi()
    with pytest.raises(ProviderConfigError, match="already built"):
        provider.cancel(lambda action, caller: None)


@pytest.mark.parametrize(
    "schema, message",
    [
        ({"type": "strin"}, "object"),
        (
            {"type": "object", "properties": {"a": {"type": "strin"}}},
            "not a valid JSON Schema",
        ),
        ("{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
    ],
)
def test_invalid_input_schema_fails_at_definition(
    auth: FakeGlobusAuth, schema: Any, message: str
) -> None:
    with pytest.raises(ProviderConfigError, match=message):
        _provider(auth, input_schema=schema)


def test_input_schema_from_json_text_and_file(
    auth: FakeGlobusAuth, tmp_path: Path
) -> None:
    text = json.dumps(ECHO_SCHEMA)
    assert _provider(auth, input_schema=text).input_schema == ECHO_SCHEMA
    path = tmp_path / "schema.json"
    path.write_text(text)
    assert _provider(auth, input_schema=path).input_schema == ECHO_SCHEMA
    assert _provider(auth, input_schema=str(path)).input_schema == ECHO_SCHEMA
    with pytest.raises(ProviderConfigError, match="cannot read"):
        _provider(auth, input_schema=str(tmp_path / "missing.json"))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"runnable_by": ["someone"]}, "runnable_by.*not a principal URN"),
        ({"visible_to": ["everyone"]}, "visible_to.*'public'.*'all_authenticated"),
        ({"runnable_by": ["public"]}, "runnable_by"),
        ({"administered_by": ["all_authenticated_users"]}, "administered_by"),
        ({"runnable_by": "all_authenticated_users"}, "not a string"),
        ({"maximum_deadline": "30 days"}, "maximum_deadline"),
        ({"title": ""}, "title"),
        ({"title": "x" * 129}, "title"),
        ({"prefix": "skeleton"}, "prefix"),
    ],
)
def test_bad_settings_fail_at_definition(
    auth: FakeGlobusAuth, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProviderConfigError, match=message):
        _provider(auth, **kw)


def test_missing_client_secret_is_a_clear_startup_error(
    auth: FakeGlobusAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APTOOLS_CLIENT_SECRET")
    provider = _provider(auth)
    provider.run(lambda request, caller: {})
    with pytest.raises(ProviderConfigError, match="APTOOLS_CLIENT_SECRET") as caught:
        provider.wsgi()
    assert auth.client_secret not in str(caught.value)


def test_explicit_credentials_beat_the_environment(
    auth: FakeGlobusAuth, monkeypatch: pytest.MonkeyPatch, flavour: str
) -> None:
    # The environment names a client Globus Auth does not know: only the
    # explicit credentials can authenticate the provider.
    monkeypatch.setenv("APTOOLS_CLIENT_ID", "not-this-client")
    monkeypatch.setenv("APTOOLS_CLIENT_SECRET", "not-this-secret")
    alice = auth.identity("alice@example.org")
    answers = {}
    for name, kw in (
        (
            "explicit",
            {"client_id": auth.client_id, "client_secret": auth.client_secret},
        ),
        ("environment", {}),
    ):
        provider = _provider(auth, **kw)
        provider.run(lambda request, caller: {})
        client = ProviderClient(provider, flavour=flavour)
        answers[name] = client.run({"input_string": "x"}, as_=alice).status_code
    assert answers == {"explicit": 202, "environment": 502}


def test_description_follows_registrations(auth: FakeGlobusAuth) -> None:
    provider = _provider(auth, subtitle="Sub", keywords=["k"])
    assert provider.description["log_supported"] is False
    provider.log(lambda action, caller, query: [])
    about = provider.description
    assert about["log_supported"] is True
    assert about["types"] == ["Action"]
    assert about["api_version"] == "1.0"
    assert about["maximum_deadline"] == "P30D"
    assert about["subtitle"] == "Sub"
    assert "description" not in about  # not given: left out, not null


def test_store_chosen_by_environment(
    auth: FakeGlobusAuth, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from aptools import SQLiteStore

    monkeypatch.setenv("APTOOLS_STORE", f"sqlite:///{tmp_path}/a.db")
    provider = _provider(auth, store=None)
    provider.run(lambda request, caller: {})
    assert isinstance(provider.store, SQLiteStore)
    assert (tmp_path / "a.db").exists()
    monkeypatch.setenv("APTOOLS_STORE", "redis://nope")
    other = _provider(auth, store=None)
    other.run(lambda request, caller: {})
    with pytest.raises(ValueError, match="unknown store URL"):
        other.wsgi()
