"""The fake Globus Auth's developer API answers in the shapes of globus-sdk's
own test fixtures (``globus_sdk.testing``), through the real ``AuthClient``."""

from __future__ import annotations

from typing import Any

import globus_sdk
import pytest
from globus_sdk.testing import load_response_set

from aptools.testing import MANAGE_PROJECTS, FakeGlobusAuth

TRANSFER = "urn:globus:auth:scope:transfer.api.globus.org:all"


def fixture(name: str) -> Any:
    return load_response_set(f"auth.{name}").lookup("default").json


def same_shape(ours: Any, theirs: Any, where: str) -> None:
    """``ours`` has every key ``theirs`` has, each with a value of its type."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), where
        for key, value in theirs.items():
            assert key in ours, f"{where}.{key} missing"
            same_shape(ours[key], value, f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list), where
        for item in ours if theirs else ():
            same_shape(item, theirs[0], f"{where}[]")
    elif theirs is not None and ours is not None:
        assert type(ours) is type(theirs), f"{where}: {ours!r} vs {theirs!r}"


@pytest.fixture
def client(auth: FakeGlobusAuth) -> tuple[globus_sdk.AuthClient, str]:
    admin = auth.identity("admin@example.org", scopes=(MANAGE_PROJECTS,))
    project = auth.project(admin)
    token = globus_sdk.AccessTokenAuthorizer(admin.token)
    return globus_sdk.AuthClient(authorizer=token), project


def test_every_answer_has_the_fixtures_shape(
    client: tuple[globus_sdk.AuthClient, str],
) -> None:
    ac, project = client
    made = ac.create_client(
        "AP", project, client_type="hybrid_confidential_client_resource_server"
    )
    same_shape(made.data, fixture("create_client"), "create_client")
    client_id = made["client"]["id"]
    same_shape(ac.get_clients().data, fixture("get_clients"), "get_clients")
    same_shape(ac.get_client(client_id=client_id).data, fixture("get_client"), "get")
    secret = ac.create_client_credential(client_id, "aptools")
    same_shape(secret.data, fixture("create_client_credential"), "credential")
    assert isinstance(secret["credential"]["secret"], str)
    listed = ac.get_client_credentials(client_id)
    same_shape(listed.data, fixture("get_client_credentials"), "credentials")
    assert listed["credentials"][0]["secret"] is None  # shown once only
    transfer = ac.get_scopes(scope_strings=[TRANSFER])
    same_shape(transfer.data, fixture("get_scopes"), "get_scopes")
    spec = globus_sdk.DependentScopeSpec(transfer["scopes"][0]["id"], False, True)
    scope = ac.create_scope(
        client_id, "AP", "Run AP", "action_all", dependent_scopes=[spec]
    )
    same_shape(scope.data, fixture("create_scope"), "create_scope")
    assert scope["scope"]["scope_string"].endswith(f"/{client_id}/action_all")
    updated = ac.update_scope(scope["scope"]["id"], dependent_scopes=[])
    same_shape(updated.data, fixture("update_scope"), "update_scope")
    assert updated["scope"]["dependent_scopes"] == []
    same_shape(ac.get_projects().data, fixture("get_projects"), "get_projects")


def test_refusals_are_globus_auth_errors(
    auth: FakeGlobusAuth, client: tuple[globus_sdk.AuthClient, str]
) -> None:
    ac, project = client
    made = ac.create_client("AP", project, client_type="resource_server")["client"]
    ac.create_scope(made["id"], "AP", "Run AP", "action_all")
    with pytest.raises(globus_sdk.AuthAPIError) as twice:
        ac.create_scope(made["id"], "AP", "Run AP", "action_all")
    assert (twice.value.http_status, twice.value.code) == (409, "CONFLICT")
    with pytest.raises(globus_sdk.AuthAPIError) as bad:
        ac.create_scope(made["id"], "AP", "Run AP", "Action-All")
    assert bad.value.http_status == 400
    # Someone else's project and clients are out of reach.
    stranger = auth.identity("stranger@example.org", scopes=(MANAGE_PROJECTS,))
    theirs = globus_sdk.AuthClient(
        authorizer=globus_sdk.AccessTokenAuthorizer(stranger.token)
    )
    assert list(theirs.get_clients()) == []
    with pytest.raises(globus_sdk.AuthAPIError) as hidden:
        theirs.get_client(client_id=made["id"])
    assert hidden.value.http_status == 404
    with pytest.raises(globus_sdk.AuthAPIError) as foreign:
        theirs.create_client("AP", project, client_type="resource_server")
    assert foreign.value.http_status == 403
    # A token without manage_projects is refused.
    plain = auth.identity("plain@example.org")
    without = globus_sdk.AuthClient(
        authorizer=globus_sdk.AccessTokenAuthorizer(plain.token)
    )
    with pytest.raises(globus_sdk.AuthAPIError) as refused:
        without.get_clients()
    assert (refused.value.http_status, refused.value.code) == (403, "FORBIDDEN")
