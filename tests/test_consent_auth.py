"""Consent, Globus Auth's side: ConsentRequired from dependent-token grants,
told apart from outages, through the real globus-sdk against the fake."""

from __future__ import annotations

from typing import Any

import globus_sdk
import pytest
from globus_sdk.gare import GARE, to_gare
from globus_sdk.scopes import Scope, TransferScopes

import aptools
from aptools import (
    ActionProviderError,
    ActionRequest,
    AuthServiceError,
    AuthServiceUnavailable,
    Caller,
    ConsentRequired,
)
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import MakeClient

GOOD = {"input_string": "hello"}
TRANSFER = str(TransferScopes.all)
DATA_ACCESS = (
    "https://auth.globus.org/scopes/0b1e2f9c-0000-4000-8000-000000000001/data_access"
)


def acting_for_caller(*scopes: str) -> tuple[Any, dict[str, Any]]:
    """A run handler getting tokens for ``scopes``; ``seen`` tells what happened."""
    seen: dict[str, Any] = {}

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        try:
            for scope in scopes:
                seen.setdefault("tokens", []).append(
                    caller.authorizer(scope).access_token
                )
        except ActionProviderError as exc:
            seen["error"] = exc
            return {"error": type(exc).__name__}
        return {"error": None}

    return run, seen


@pytest.mark.parametrize("refuse", [False, True], ids=["omitted", "refused"])
def test_missing_consent_is_consent_required_then_granted(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, refuse: bool
) -> None:
    run, seen = acting_for_caller(TRANSFER)
    provider, client = make(run=run)
    auth.withhold_consent(alice, TRANSFER, refuse=refuse)
    before = auth.grants[TRANSFER]
    assert client.run(alice, GOOD, request_id="a").json["details"] == {
        "error": "ConsentRequired"
    }
    error = seen.pop("error")
    assert isinstance(error, ConsentRequired)
    assert error.required_scopes == [TRANSFER]
    assert auth.grants[TRANSFER] == before  # no token was granted
    # The requirement it gives reads back through globus-sdk as the same one.
    details = error.details(provider.scope)
    expected = str(Scope(provider.scope).with_dependency(Scope(TRANSFER)))
    assert details["code"] == "ConsentRequired"
    assert details["required_scope"] == expected
    gare = to_gare(details)
    assert isinstance(gare, GARE) and gare.code == "ConsentRequired"
    assert gare.authorization_parameters.required_scopes == [expected]
    assert gare.authorization_parameters.session_message == details["description"]

    auth.grant_consent(alice, TRANSFER)
    assert client.run(alice, GOOD, request_id="b").json["details"] == {"error": None}
    assert auth.grants[TRANSFER] == before + 1
    assert "error" not in seen and len(seen["tokens"]) == 1


def test_consent_is_per_identity_and_per_scope(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    run, seen = acting_for_caller(TRANSFER, DATA_ACCESS)
    _, client = make(run=run)
    auth.withhold_consent(alice, DATA_ACCESS)
    assert client.run(bob, GOOD).json["details"] == {"error": None}
    assert client.run(alice, GOOD).json["details"] == {"error": "ConsentRequired"}
    assert seen["error"].required_scopes == [DATA_ACCESS]


@pytest.mark.parametrize(
    "failure, expected",
    [
        (500, AuthServiceUnavailable),
        (503, AuthServiceUnavailable),
        (429, AuthServiceUnavailable),
        (401, AuthServiceError),  # the provider's own credentials refused
        (403, AuthServiceError),
        (400, AuthServiceError),
    ],
)
def test_outages_and_bad_credentials_are_never_missing_consent(
    make: MakeClient,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    failure: int,
    expected: type[Exception],
) -> None:
    seen: dict[str, Any] = {}

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        auth.fail(failure)  # after this request was authenticated
        try:
            caller.authorizer(TRANSFER)
        except ActionProviderError as exc:
            seen["error"] = exc
        finally:
            auth.recover()
        return {}

    _, client = make(run=run)
    assert client.run(alice, GOOD).status_code == 202
    assert type(seen["error"]) is expected


def test_an_unanswered_grant_is_unavailable_not_missing_consent(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    seen: dict[str, Any] = {}

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        auth.hang()
        try:
            caller.dependent_token(TRANSFER)
        except ActionProviderError as exc:
            seen["error"] = exc
        finally:
            auth.recover()
        return {}

    _, client = make(run=run, auth_timeout=0.3)
    assert client.run(alice, GOOD).status_code == 202
    assert type(seen["error"]) is AuthServiceUnavailable


def test_consent_required_escaping_a_handler_is_a_json_error(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    # Where no action takes it (the log, say), a 403 JSON error; from run it
    # makes the action INACTIVE (tests/test_consent.py).
    def log(action: Any, caller: Caller, query: Any) -> list[Any]:
        caller.authorizer(TRANSFER)
        return []

    _, client = make(log=log)
    auth.withhold_consent(alice, TRANSFER)
    action_id = client.run(alice, GOOD).json["action_id"]
    answer = client.call("GET", f"/{action_id}/log", alice)
    assert answer.status_code == 403
    assert answer.json["code"] == "ConsentRequired"
    assert alice.token not in answer.text


def test_missing_groups_consent_is_the_providers_set_up_not_the_callers(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    from aptools.vocabulary import GROUPS_SCOPE

    group = auth.group(alice)
    _, client = make(runnable_by=[group])
    auth.withhold_consent(alice, GROUPS_SCOPE)
    answer = client.run(alice, GOOD)
    assert answer.status_code == 502
    assert answer.json["code"] == "AuthServiceError"


def test_provider_code_raises_consent_required() -> None:
    assert aptools.ConsentRequired is ConsentRequired
    assert issubclass(ConsentRequired, ActionProviderError)
    provider_scope = (
        "https://auth.globus.org/scopes/11111111-2222-3333-4444-555555555555/action_all"
    )
    error = ConsentRequired(required_scopes=[TRANSFER, DATA_ACCESS, TRANSFER])
    assert error.required_scopes == [TRANSFER, DATA_ACCESS]
    assert error.status_code == 403 and error.error_code == "ConsentRequired"
    details = error.details(provider_scope)
    parsed = Scope.parse(details["required_scope"])
    assert parsed.scope_string == provider_scope
    assert {str(d) for d in parsed.dependencies} == {TRANSFER, DATA_ACCESS}
    gare = to_gare(details)
    assert gare is not None
    assert gare.authorization_parameters.required_scopes == [details["required_scope"]]
    said = ConsentRequired("Consent to Transfer, please.", required_scopes=[TRANSFER])
    assert said.details(provider_scope)["description"] == "Consent to Transfer, please."
    for bad in ([], [""], ["  "]):
        with pytest.raises(ValueError, match="required scope"):
            ConsentRequired(required_scopes=bad)


def test_a_transfer_consent_error_becomes_consent_required() -> None:
    # A provider that gets ConsentRequired from another service hands its
    # required scopes on (Transfer's legacy form, read with globus_sdk.gare).
    document = {"code": "ConsentRequired", "required_scopes": [DATA_ACCESS]}
    gare = to_gare(document)
    assert gare is not None
    error = ConsentRequired(
        required_scopes=gare.authorization_parameters.required_scopes or []
    )
    assert error.required_scopes == [DATA_ACCESS]
    assert isinstance(globus_sdk.gare.to_gare(error.details("urn:x:y")), GARE)
