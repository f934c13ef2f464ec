"""Authentication through the real globus-sdk against the fake Globus Auth."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from aptools import ActionRequest, Caller, SQLiteStore
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import MakeClient

GOOD = {"input_string": "hello"}


@pytest.mark.parametrize(
    "header, reason",
    [
        (None, "required"),
        ("Basic abc", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer    ", "Bearer"),
        ("Bearer not-a-known-token", "not active"),
    ],
)
def test_bad_credentials_are_401(
    make: MakeClient, header: str | None, reason: str
) -> None:
    _, client = make()
    headers = {"Authorization": header} if header is not None else {}
    result = client.call(
        "POST", "/run", headers=headers, json={"request_id": "r", "body": GOOD}
    )
    assert result.status_code == 401
    assert result.json["code"] == "AuthenticationFailed"
    assert reason in result.json["description"]
    assert result.headers["www-authenticate"] == "Bearer"


def test_inactive_and_wrong_scope_tokens_are_401(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    _, client = make()
    revoked = auth.token(alice)
    auth.revoke(revoked)
    assert client.run(revoked, GOOD).status_code == 401
    other_scope = auth.token(
        alice, scopes=("urn:globus:auth:scope:transfer.api.globus.org:all",)
    )
    result = client.run(other_scope, GOOD)
    assert result.status_code == 401 and "scope" in result.json["description"]
    superset = auth.token(alice, scopes=("openid", auth.scope, "email"))
    assert client.run(superset, GOOD).status_code == 202
    expired = auth.token(alice, expires_in=-10)
    assert client.run(expired, GOOD, request_id="r2").status_code == 401


def test_introspection_is_cached(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    _, client = make()
    before = auth.calls["introspect"]
    for n in range(5):
        assert client.run(alice, GOOD, request_id=f"r{n}").status_code == 202
    assert auth.calls["introspect"] == before + 1


def test_bad_tokens_are_cached_too(make: MakeClient, auth: FakeGlobusAuth) -> None:
    _, client = make()
    before = auth.calls["introspect"]
    for _ in range(3):
        assert client.run("nonsense-token", GOOD).status_code == 401
    assert auth.calls["introspect"] == before + 1


def test_one_introspection_for_many_concurrent_requests(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, flavour: str
) -> None:
    _, client = make()
    token = auth.token(alice)
    before = auth.calls["introspect"]
    auth.hang()  # hold the first introspection so that all requests pile up
    threading.Timer(0.5, auth.recover).start()
    headers = {"Authorization": f"Bearer {token}"}
    results: list[Any] = []
    if flavour == "wsgi":

        def call(n: int) -> None:
            results.append(
                client.call(
                    "POST",
                    "/run",
                    headers=headers,
                    json={"request_id": f"r{n}", "body": GOOD},
                )
            )

        threads = [threading.Thread(target=call, args=(n,)) for n in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:

        async def main() -> None:
            async with falcon.testing.ASGIConductor(client.app) as conductor:
                results.extend(
                    await asyncio.gather(
                        *(
                            conductor.simulate_post(
                                "/test/run",
                                headers=headers,
                                json={"request_id": f"r{n}", "body": GOOD},
                            )
                            for n in range(50)
                        )
                    )
                )

        asyncio.run(main())
    assert [r.status_code for r in results] == [202] * 50
    assert auth.calls["introspect"] == before + 1


@pytest.mark.parametrize("status, code", [(500, 503), (503, 503), (400, 502)])
def test_auth_errors_are_json_502_503(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, status: int, code: int
) -> None:
    _, client = make()
    auth.fail(status)
    started = time.monotonic()
    result = client.run(alice, GOOD)
    assert time.monotonic() - started < 5
    assert result.status_code == code
    assert result.json["code"] in ("AuthServiceUnavailable", "AuthServiceError")
    auth.recover()
    assert client.run(alice, GOOD).status_code == 202  # failures are not cached


def test_auth_hanging_is_a_503_within_seconds(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    _, client = make(auth_timeout=0.5)
    auth.hang()
    started = time.monotonic()
    result = client.run(alice, GOOD)
    elapsed = time.monotonic() - started
    assert result.status_code == 503
    assert result.json["code"] == "AuthServiceUnavailable"
    assert elapsed < 3


def test_auth_down_is_a_503(
    make: MakeClient, alice: FakeIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 9 of loopback.
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", "http://127.0.0.1:9/")
    _, client = make()
    result = client.run(alice, GOOD)
    assert result.status_code == 503
    assert result.json["code"] == "AuthServiceUnavailable"


def test_wrong_client_secret_is_502_and_secret_never_logged(
    make: MakeClient,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "wrong-secret-do-not-log"
    _, client = make(client_secret=wrong)
    with caplog.at_level(logging.DEBUG):
        result = client.run(alice, GOOD)
    assert result.status_code == 502
    assert result.json["code"] == "AuthServiceError"
    assert "could not authenticate itself" in result.json["description"]
    assert wrong not in caplog.text and auth.client_secret not in caplog.text
    assert alice.token not in caplog.text


def test_groups_failure_denies_and_is_logged(
    make: MakeClient,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    bob: FakeIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = auth.group(bob)
    _, client = make(runnable_by=[group])
    # Authenticated (and cached) without any group lookup yet.
    assert client.call("GET", "/no-such-action/status", bob).status_code == 404
    auth.fail(500)
    with caplog.at_level(logging.WARNING, logger="aptools"):
        result = client.run(bob, GOOD)
    assert result.status_code == 503
    assert "could not get a dependent token" in caplog.text
    auth.recover()
    assert client.run(bob, GOOD).status_code == 202


def test_groups_outage_hides_actions_like_unknown_ones(
    make: MakeClient,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    bob: FakeIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aptools import ActionStatus

    group = auth.group(bob)
    _, client = make(run=lambda r, c: ActionStatus.active())
    action_id = client.run(alice, GOOD, monitor_by=[group]).json["action_id"]
    fresh = auth.token(bob)
    # Authenticated (and cached) without any group lookup yet.
    assert client.call("GET", "/no-such-action/status", fresh).status_code == 404
    auth.fail(503)
    with caplog.at_level(logging.WARNING, logger="aptools"):
        hidden = client.call("GET", f"/{action_id}/status", fresh)
    assert hidden.status_code == 404
    assert "denied" in caplog.text
    auth.recover()
    assert client.call("GET", f"/{action_id}/status", fresh).status_code == 200


def test_visible_to_restricts_introspection(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    _, client = make(visible_to=[alice.urn])
    assert client.call("GET", "/").status_code == 401
    assert client.call("GET", "/", alice).status_code == 200
    assert client.call("GET", "/", bob).status_code == 403
    _, public = make()
    doc = public.call("GET", "/")
    assert doc.status_code == 200 and doc.json["visible_to"] == ["public"]
    assert doc.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("with_identity", [False, True])
def test_visible_to_all_authenticated_users(
    make: MakeClient, alice: FakeIdentity, bob: FakeIdentity, with_identity: bool
) -> None:
    visible_to = ["all_authenticated_users"] + ([alice.urn] if with_identity else [])
    provider, client = make(visible_to=visible_to)
    assert provider.description["visible_to"] == visible_to
    for path in ("/", "/openapi.json"):
        assert client.call("GET", path).status_code == 401
        assert client.call("GET", path, "not-a-valid-token").status_code == 401
        for who in (alice, bob):  # any valid token, no list to be on
            assert client.call("GET", path, who).status_code == 200


def test_caller_in_handler_and_dependent_tokens(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    seen: list[Caller] = []
    scope = "https://auth.globus.org/scopes/transfer.api.globus.org/all"

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        seen.append(caller)
        authorizer = caller.authorizer(scope)
        again = caller.authorizer(scope)
        return {
            "user": caller.username,
            "same_token": authorizer.access_token == again.access_token,
            "groups": sorted(caller.groups()),
        }

    group = auth.group(alice)
    _, client = make(run=run)
    before = auth.calls["dependent_token"]
    result = client.run(alice, GOOD)
    assert result.status_code == 202
    assert result.json["details"] == {
        "user": "alice@example.org",
        "same_token": True,
        "groups": [group],
    }
    assert auth.calls["dependent_token"] == before + 2  # transfer once, groups once
    assert alice.token not in repr(seen[0])


def test_workers_sharing_a_sqlite_store_share_introspections(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, tmp_path: Path
) -> None:
    # Two providers on one file stand for two worker processes: each has its
    # own cache, and the second finds the first one's introspection on file.
    # (Counted per token: the fake is shared with the other tests.)
    _, first = make(store=SQLiteStore(tmp_path / "a.db"))
    _, second = make(store=SQLiteStore(tmp_path / "a.db"))
    token = auth.token(alice)
    assert first.run(token, GOOD, request_id="one").status_code == 202
    assert second.run(token, GOOD, request_id="two").status_code == 202
    assert auth.introspected(token) == 1
    # Refusals are shared as well, with their reason.
    never = f"never-issued-{uuid.uuid4()}"
    assert first.run(never, GOOD).status_code == 401
    refused = second.run(never, GOOD)
    assert refused.status_code == 401 and "not active" in refused.json["description"]
    assert auth.introspected(never) == 1
    # A separate file shares nothing.
    _, elsewhere = make(store=SQLiteStore(tmp_path / "b.db"))
    assert elsewhere.run(token, GOOD, request_id="three").status_code == 202
    assert auth.introspected(token) == 2


def test_shared_introspections_expire(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, tmp_path: Path
) -> None:
    _, first = make(store=SQLiteStore(tmp_path / "a.db"), token_cache_ttl=0.3)
    _, second = make(store=SQLiteStore(tmp_path / "a.db"), token_cache_ttl=0.3)
    token = auth.token(alice)
    before = auth.calls["introspect"]
    assert first.run(token, GOOD, request_id="one").status_code == 202
    time.sleep(0.5)
    assert second.run(token, GOOD, request_id="two").status_code == 202
    assert auth.calls["introspect"] == before + 2


def test_shared_introspections_never_hold_the_token(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, tmp_path: Path
) -> None:
    _, client = make(store=SQLiteStore(tmp_path / "a.db"))
    token = auth.token(alice)
    assert client.run(token, GOOD).status_code == 202
    with sqlite3.connect(tmp_path / "a.db") as db:
        rows = db.execute("SELECT key, record FROM aptools_introspections").fetchall()
    assert len(rows) == 1
    key, record = rows[0]
    assert token.encode() not in key and token.encode() not in record
    assert json.loads(record)["sub"] == alice.id


def test_globus_sdk_is_loaded_when_the_app_is_built_not_by_the_first_request(
    tmp_path: Path,
) -> None:
    # globus-sdk loads its modules lazily, 0.2-0.5 s on a busy host: inside
    # the first request's authentication timeout unless the build loads them.
    import subprocess
    import sys

    program = (
        "import sys\n"
        "from aptools import Provider\n"
        "p = Provider(title='t', subtitle='t', scope='s', admin_contact='a@b.c',\n"
        "             client_id='x', client_secret='y', store='memory:',\n"
        "             input_schema={'type': 'object'})\n"
        "p.run(lambda request, caller: {})\n"
        "before = 'globus_sdk.services.auth' in sys.modules\n"
        "p.wsgi()\n"
        "print(before, 'globus_sdk.services.auth' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.stdout.split() == ["False", "True"], done.stderr
