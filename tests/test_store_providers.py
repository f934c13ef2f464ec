"""Providers sharing a store keep their actions, request ids and token
introspections apart; a store that cannot be opened fails the build clearly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aptools import MemoryStore, Provider, ProviderConfigError, SQLiteStore, Store
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import Client, MakeClient
from .servers import ROOT, aptools_cli

GOOD = {"input_string": "hello"}
OTHER_SCOPE = (
    "https://auth.globus.org/scopes/bbbbbbbb-0000-4000-8000-000000000002/action_all"
)

Stores = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite", "sqlite-url"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    """Stores of one backend for two providers: one shared object, or (as two
    services on one file) a store each, opened from the same URL."""
    kind = request.param
    if kind == "memory":
        shared: Store = MemoryStore()
        return lambda: shared
    if kind == "sqlite":
        one_file = SQLiteStore(tmp_path / "actions.db")
        return lambda: one_file
    return lambda: f"sqlite:///{tmp_path}/actions.db"  # type: ignore[return-value]


def _echo(prefix: str) -> Callable[..., dict[str, Any]]:
    return lambda request, caller: {"from": prefix, **request.body}


def _pair(make: MakeClient, stores: Stores, **kw: Any) -> tuple[Client, Client]:
    _, alpha = make(prefix="/alpha", store=stores(), run=_echo("/alpha"), **kw)
    _, beta = make(prefix="/beta", store=stores(), run=_echo("/beta"), **kw)
    return alpha, beta


def test_providers_sharing_a_store_never_see_each_others_actions(
    make: MakeClient, stores: Stores, alice: FakeIdentity
) -> None:
    alpha, beta = _pair(make, stores, synchronous=True)
    first = alpha.run(alice, GOOD, request_id="job-1")
    assert first.status_code == 202
    action_id = first.json["action_id"]
    for method, path in (
        ("GET", f"/{action_id}/status"),
        ("GET", f"/actions/{action_id}"),
        ("POST", f"/{action_id}/cancel"),
        ("POST", f"/{action_id}/release"),
        ("DELETE", f"/actions/{action_id}"),
    ):
        assert beta.call(method, path, alice).status_code == 404, (method, path)
    still = alpha.call("GET", f"/{action_id}/status", alice)
    assert still.status_code == 200 and still.json["details"]["from"] == "/alpha"


def test_request_ids_belong_to_their_provider(
    make: MakeClient, stores: Stores, alice: FakeIdentity
) -> None:
    alpha, beta = _pair(make, stores, synchronous=True)
    at_alpha = alpha.run(alice, GOOD, request_id="job-1")
    alpha.run(alice, GOOD, request_id="job-2")
    same = beta.run(alice, GOOD, request_id="job-1")
    assert same.status_code == 202 and same.json["details"]["from"] == "/beta"
    assert same.json["action_id"] != at_alpha.json["action_id"]
    other = beta.run(alice, {"input_string": "bye"}, request_id="job-2")
    assert other.status_code == 202 and other.json["details"]["from"] == "/beta"
    again = alpha.run(alice, GOOD, request_id="job-1")
    assert again.status_code == 200
    assert again.json["action_id"] == at_alpha.json["action_id"]


def test_one_store_namespace_shares_actions(
    make: MakeClient, stores: Stores, alice: FakeIdentity
) -> None:
    alpha, beta = _pair(make, stores, synchronous=True, store_namespace="shared")
    first = alpha.run(alice, GOOD, request_id="job-1")
    seen = beta.call("GET", f"/{first.json['action_id']}/status", alice)
    assert seen.status_code == 200 and seen.json["details"]["from"] == "/alpha"
    assert beta.run(alice, GOOD, request_id="job-1").status_code == 200


@pytest.mark.parametrize("namespace", ["", "x" * 1025])
def test_store_namespace_must_be_a_short_text(
    auth: FakeGlobusAuth, namespace: str
) -> None:
    with pytest.raises(ProviderConfigError, match="store_namespace"):
        Provider(
            title="t",
            scope=auth.scope,
            admin_contact="a@example.org",
            input_schema={"type": "object"},
            store_namespace=namespace,
        )


@pytest.mark.parametrize(
    "alpha_first", [True, False], ids=["alpha-first", "beta-first"]
)
def test_shared_introspections_are_checked_against_each_scope(
    make: MakeClient,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    tmp_path: Path,
    alpha_first: bool,
) -> None:
    url = f"sqlite:///{tmp_path}/actions.db"
    _, alpha = make(prefix="/alpha", store=url)
    _, beta = make(prefix="/beta", store=url, scope=OTHER_SCOPE)
    token = auth.token(alice, scopes=(auth.scope,))
    if alpha_first:
        assert alpha.run(token, GOOD).status_code == 202
        assert beta.run(token, GOOD).status_code == 401
    else:
        assert beta.run(token, GOOD).status_code == 401
        assert alpha.run(token, GOOD).status_code == 202


@pytest.mark.parametrize(
    "alpha_first", [True, False], ids=["alpha-first", "beta-first"]
)
def test_a_shared_record_of_another_scope_is_not_trusted(
    make: MakeClient,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    tmp_path: Path,
    alpha_first: bool,
) -> None:
    # One namespace chosen for two scopes: the records meet, and each
    # provider still decides by its own scope.
    url = f"sqlite:///{tmp_path}/actions.db"
    _, alpha = make(prefix="/alpha", store=url, store_namespace="same")
    _, beta = make(prefix="/beta", store=url, store_namespace="same", scope=OTHER_SCOPE)
    token = auth.token(alice, scopes=(auth.scope,))
    calls = [(alpha, 202), (beta, 401)]
    for client, expected in calls if alpha_first else calls[::-1]:
        result = client.run(token, GOOD, request_id=f"r-{expected}")
        assert result.status_code == expected
    both = auth.token(alice, scopes=(auth.scope, OTHER_SCOPE))
    assert alpha.run(both, GOOD, request_id="both").status_code == 202
    assert beta.run(both, GOOD, request_id="both-at-beta").status_code == 202


def test_each_namespace_introspects_for_itself(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/actions.db"
    _, alpha = make(prefix="/alpha", store=url)
    _, beta = make(prefix="/beta", store=url)
    _, alpha_again = make(prefix="/alpha", store=url)
    token = auth.token(alice)
    before = auth.calls["introspect"]
    assert alpha.run(token, GOOD, request_id="one").status_code == 202
    assert beta.run(token, GOOD, request_id="two").status_code == 202
    assert auth.calls["introspect"] == before + 2
    # Another worker of alpha's finds alpha's record.
    assert alpha_again.run(token, GOOD, request_id="three").status_code == 202
    assert auth.calls["introspect"] == before + 2


# -- stores that cannot be opened ---------------------------------------------------


def _build(auth: FakeGlobusAuth, flavour: str, store: Any) -> None:
    provider = Provider(
        title="t",
        scope=auth.scope,
        admin_contact="a@example.org",
        input_schema={"type": "object"},
        store=store,
    )
    provider.run(lambda request, caller: {})
    provider.wsgi() if flavour == "wsgi" else provider.asgi()


def test_a_store_in_a_missing_directory_fails_the_build(
    auth: FakeGlobusAuth, flavour: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "also-missing" / "dir"
    with pytest.raises(ProviderConfigError, match="does not exist") as refused:
        _build(auth, flavour, f"sqlite:///{missing}/actions.db")
    assert str(missing) in str(refused.value)
    monkeypatch.setenv("APTOOLS_STORE", f"sqlite:///{missing}/actions.db")
    with pytest.raises(ProviderConfigError, match="does not exist"):
        _build(auth, flavour, None)
    assert not (tmp_path / "also-missing").exists()


def test_a_file_that_is_no_database_fails_the_build(
    auth: FakeGlobusAuth, flavour: str, tmp_path: Path
) -> None:
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    with pytest.raises(ProviderConfigError, match="not a SQLite database") as refused:
        _build(auth, flavour, f"sqlite:///{tmp_path}/passwd")
    assert str(tmp_path / "passwd") in str(refused.value)


def test_an_unknown_store_url_fails_the_build_without_its_password(
    auth: FakeGlobusAuth, flavour: str
) -> None:
    with pytest.raises(ProviderConfigError, match="unknown store URL") as refused:
        _build(auth, flavour, "scheme://user:hunter22@host/db")
    assert "hunter22" not in str(refused.value)
    assert "scheme://user:***@host/db" in str(refused.value)


@pytest.mark.parametrize("command", ["check", "serve"])
@pytest.mark.parametrize("store", ["missing-dir", "not-a-database", "unknown-scheme"])
def test_the_command_refuses_a_bad_store_in_one_line(
    tmp_path: Path, command: str, store: str
) -> None:
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    url, named = {
        "missing-dir": (f"sqlite:///{tmp_path}/no-such-dir/a.db", "no-such-dir"),
        "not-a-database": (f"sqlite:///{tmp_path}/passwd", str(tmp_path / "passwd")),
        "unknown-scheme": ("scheme://user:hunter22@host/db", "user:***@host"),
    }[store]
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "APTOOLS_STORE": url,
        "APTOOLS_CLIENT_ID": "client",
        "APTOOLS_CLIENT_SECRET": "secret",
        "WATCHASAY_SCOPE": OTHER_SCOPE,
    }
    args = [command, "examples.watchasay.app"]
    if command == "serve":
        args += ["--wsgi", "--port", "1"]  # refused before it would listen
    done = aptools_cli(*args, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode != 0
    assert named in done.stderr and "Traceback" not in done.stderr
    assert "hunter22" not in done.stdout + done.stderr
    assert not (tmp_path / "no-such-dir").exists()
