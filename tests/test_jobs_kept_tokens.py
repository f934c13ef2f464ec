"""Kept tokens for real jobs: declared scopes granted while the run's token
is fresh, acted on in another process after it expired, rotated refresh
tokens, revoked consents, and the tokens' end. Both faces, every store."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
import pytest
from cryptography.fernet import Fernet
from globus_sdk.scopes import TransferScopes

from aptools import Action, ActionFailed, Caller, Job
from aptools.testing import FakeGlobusAuth, FakeIdentity
from aptools.testing.waiting import wait_for
from tests.pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures
from tests.test_consent import check_waiting, resume
from tests.test_jobs import (  # noqa: F401 - fixtures
    Build,
    Gate,
    build,
    ended,
    new_store,
    status,
    store_kind,
)

TRANSFER = str(TransferScopes.all)
SEARCH = "urn:globus:auth:scope:search.api.globus.org:all"


def kept(client_provider: Any) -> dict[str, bytes]:
    """The job rows' kept tokens (sealed), by action id."""
    queue = client_provider.store.jobs()
    assert queue is not None
    found: dict[str, bytes] = queue.kept_tokens()
    return found


def opened(key: bytes, sealed: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(Fernet(key).decrypt(sealed))
    return doc


def no_token_in(text: str) -> None:
    assert "fake-refresh-" not in text
    assert "fake-" not in text.replace("fake-globus", "")


def hold(gate: Gate, started: threading.Event) -> Any:
    """A job that holds its action until its process lets it go."""

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        started.set()
        gate.step(job)
        return {}

    return work


def test_declared_scopes_act_after_the_token_expired_in_another_process(
    build: Build,  # noqa: F811 - the fixture imported above
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", key.decode())
    # (the fake serves the whole session: its settings go back after the test)
    monkeypatch.setattr(auth, "dependent_token_lifetime", 61)  # stale after 1 s
    monkeypatch.setattr(auth, "rotate_refresh_tokens", True)
    grants, refreshed = auth.grants[TRANSFER], auth.refreshed[TRANSFER]
    caplog.set_level(logging.DEBUG)
    started = threading.Event()
    settings = {
        "resumable": True,  # the accepting process goes: its job is handed back
        "keep_tokens": True,
        "lease": 3600.0,
        "dependent_scopes": [TRANSFER],
    }
    first, client = build(hold(Gate(), started), **settings)
    assert first.dependent_scopes == (TRANSFER,)
    born = time.time()
    token = auth.token(alice, expires_in=3)
    ran = client.run(token, {"n": 1})
    assert ran.status_code == 202, ran.text
    action_id = ran.json["action_id"]
    # granted in the run's request, while its token was fresh
    assert auth.grants[TRANSFER] == grants + 1
    sealed = kept(first)[action_id]
    assert b"fake-" not in sealed
    inside = opened(key, sealed)
    assert inside["refresh"][TRANSFER].startswith("fake-refresh-")
    wait_for(started.is_set, "the accepting process runs the job")
    wait_for(lambda: time.time() > born + 4, "the caller's token expired")
    first.jobs.shutdown()  # type: ignore[union-attr]  # the process goes

    seen: list[str] = []

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        seen.append(caller.authorizer(TRANSFER).access_token)
        job.wait(1.5)  # the dependent token is stale: refreshed again
        seen.append(caller.authorizer(TRANSFER).access_token)
        return {"tokens": len(set(seen))}

    second, other = build(work, **settings)
    second.jobs.runner()  # type: ignore[union-attr]  # takes the job over
    done = ended(other, alice, action_id)
    assert done["status"] == "SUCCEEDED", done
    assert done["details"] == {"tokens": 2}
    # two refreshes, each answered with a new refresh token that was kept
    assert auth.refreshed[TRANSFER] == refreshed + 2
    assert auth.grants[TRANSFER] == grants + 1
    assert action_id not in kept(second)  # gone with the action's end
    no_token_in(str(status(other, alice, action_id)))
    no_token_in("\n".join(r.getMessage() for r in caplog.records))


def test_rotated_refresh_tokens_of_an_undeclared_scope_are_kept(
    build: Build,  # noqa: F811
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The scenario of RFC 6749 section 6 with the testing kit's own switches:
    # each refresh answers a new refresh token and voids the one sent.
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    monkeypatch.setattr(auth, "dependent_token_lifetime", 61)
    monkeypatch.setattr(auth, "rotate_refresh_tokens", True)
    refreshed = auth.refreshed[SEARCH]

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        got = []
        for step in range(3):
            got.append(caller.dependent_token(SEARCH)["access_token"])
            if step < 2:
                job.wait(1.5)  # stale for aptools: refreshed next time
        return {"tokens": len(set(got))}

    _, client = build(work, keep_tokens=True, lease=6.0)
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    done = ended(client, alice, action_id)
    assert done["status"] == "SUCCEEDED", done
    assert done["details"] == {"tokens": 3}
    assert auth.refreshed[SEARCH] == refreshed + 2


def test_a_revoked_consent_makes_the_job_wait_and_a_resume_goes_on(
    build: Build,  # noqa: F811
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="aptools")
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    monkeypatch.setattr(auth, "dependent_token_lifetime", 61)
    gate = Gate()
    acted = threading.Event()
    checkpoints: list[Any] = []

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        checkpoints.append(job.checkpoint)
        if job.checkpoint is None:
            caller.authorizer(TRANSFER)
            job.save_checkpoint(1)
            acted.set()
            gate.step(job)
            job.wait(1.5)  # the dependent token is stale: a refresh is needed
        return {"token": caller.authorizer(TRANSFER).access_token[:5]}

    _, client = build(
        work, keep_tokens=True, resumable=True, dependent_scopes=[TRANSFER]
    )
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    wait_for(acted.is_set, "the job acted for its caller")
    auth.revoke_consent(alice, TRANSFER)
    gate.go.release()
    doc = wait_for(
        lambda: (d := status(client, alice, action_id))["status"] != "ACTIVE" and d,
        "the job stopped",
    )
    # invalid_grant at the refresh: the caller's to fix, never FAILED
    check_waiting(doc, auth.scope, TRANSFER)
    said = [r.getMessage() for r in caplog.records if "invalid_grant" in r.getMessage()]
    # the log names Globus Auth's error and its description, never a token
    assert said and "the refresh token is not valid" in said[0]
    no_token_in("\n".join(r.getMessage() for r in caplog.records))
    auth.grant_consent(alice, TRANSFER)
    resumed = resume(client, alice, action_id)
    assert resumed.json["status"] == "ACTIVE", resumed.json
    done = ended(client, alice, action_id)
    assert done["status"] == "SUCCEEDED", done
    assert checkpoints == [None, 1]


def test_a_consent_missing_when_the_run_is_accepted(
    build: Build,  # noqa: F811
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    runs: list[int] = []

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        runs.append(job.attempt)
        caller.authorizer(TRANSFER)
        return {"acted": True}

    provider, client = build(work, keep_tokens=True, dependent_scopes=[TRANSFER])
    auth.withhold_consent(alice, TRANSFER)
    ran = client.run(alice, {"n": 1})
    assert ran.status_code == 202, ran.text
    check_waiting(ran.json, auth.scope, TRANSFER)
    action_id = ran.json["action_id"]
    again = resume(client, alice, action_id)  # still no consent: still waiting
    check_waiting(again.json, auth.scope, TRANSFER)
    assert runs == []  # the job never ran without its tokens
    auth.grant_consent(alice, TRANSFER)
    assert resume(client, alice, action_id).json["status"] == "ACTIVE"
    done = ended(client, alice, action_id)
    assert done["status"] == "SUCCEEDED", done
    assert runs == [1]
    assert action_id not in kept(provider)


def test_an_outage_at_the_grant_refuses_the_run_with_503(
    build: Build,  # noqa: F811
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        return {}

    _, client = build(work, keep_tokens=True, dependent_scopes=[TRANSFER])
    assert client.run(alice, {"n": 1}, request_id="warm").status_code == 202
    auth.fail(503)
    refused = client.run(alice, {"n": 1})
    auth.recover()
    # the token is cached from the first request: only the grant failed
    assert refused.status_code == 503, refused.text
    again = client.run(alice, {"n": 1})  # the same request, accepted now
    assert again.status_code == 202, again.text


@pytest.mark.parametrize(
    "ending", ["cancel-waiting", "cancel", "failed", "deadline", "release", "succeeded"]
)
def test_kept_tokens_go_whenever_the_action_ends(
    build: Build,  # noqa: F811
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
    ending: str,
) -> None:
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    gate = Gate()
    acted = threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        caller.authorizer(TRANSFER)
        acted.set()
        if ending == "cancel-waiting":
            caller.authorizer(SEARCH)  # no consent: INACTIVE
        if not gate.step(job):
            return {}
        if ending == "failed":
            raise ActionFailed("no")
        return {}

    provider, client = build(work, keep_tokens=True, lease=3600.0)
    auth.withhold_consent(alice, SEARCH)
    body: dict[str, Any] = {"request_id": "r1", "body": {"n": 1}}
    if ending == "deadline":
        body["deadline"] = time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3)
        )
    action_id = client.call("POST", "/run", alice, json=body).json["action_id"]
    wait_for(acted.is_set, "the job acted for its caller")
    if ending == "cancel-waiting":
        wait_for(
            lambda: status(client, alice, action_id)["status"] == "INACTIVE",
            "the action waits for consent",
        )
    assert action_id in kept(provider)
    if ending.startswith("cancel"):
        canceled = client.call("POST", f"/{action_id}/cancel", alice).json
        assert canceled["status"] == "FAILED"
        assert action_id not in kept(provider)  # with the change itself
        # a canceled action asks for no consent any more
        assert canceled["details"].get("code") != "ConsentRequired"
        assert "authorization_parameters" not in canceled["details"]
    elif ending == "deadline":
        doc = ended(client, alice, action_id)
        assert doc["status"] == "FAILED"
        assert action_id not in kept(provider)
    else:
        gate.go.release()
        doc = ended(client, alice, action_id)
        assert doc["status"] == ("FAILED" if ending == "failed" else "SUCCEEDED")
        assert action_id not in kept(provider)
        if ending == "release":
            gone = client.call("POST", f"/{action_id}/release", alice)
            assert gone.status_code == 200
            assert action_id not in kept(provider)


def test_the_declared_scopes_are_public(auth: FakeGlobusAuth) -> None:
    from aptools import Provider, ProviderConfigError

    def make(**kw: Any) -> Provider:
        return Provider(
            title="Declared",
            scope=auth.scope,
            admin_contact="a@example.org",
            input_schema={"type": "object"},
            store="memory:",
            **kw,
        )

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        return {}

    provider = make(dependent_scopes=[SEARCH])
    provider.job(keep_tokens=True, scopes=[TRANSFER, SEARCH])(work)
    assert provider.dependent_scopes == (SEARCH, TRANSFER)
    scheme = provider.openapi()["components"]["securitySchemes"]
    [found] = scheme.values()
    assert found["x-globus-dependent-scopes"] == [SEARCH, TRANSFER]
    bare = make()
    bare.job(keep_tokens=True)(work)
    assert bare.dependent_scopes == ()
    [plain] = bare.openapi()["components"]["securitySchemes"].values()
    assert "x-globus-dependent-scopes" not in plain
    with pytest.raises(ProviderConfigError, match="list of scope strings"):
        make(dependent_scopes=TRANSFER)
    with pytest.raises(ProviderConfigError, match="not one scope string"):
        make(dependent_scopes=[f"{TRANSFER} {SEARCH}"])
    with pytest.raises(ProviderConfigError, match="keep_tokens=True"):
        make().job(scopes=[TRANSFER])


def test_kept_tokens_go_when_an_expired_action_is_purged(
    new_store: Any,  # noqa: F811
) -> None:
    from datetime import UTC, datetime

    from aptools import RequestKey, Stored

    store = new_store().for_provider("purged")
    queue = store.jobs()
    now = time.time()
    for n, state in enumerate(("ACTIVE", "SUCCEEDED")):
        action = Action(
            action_id=f"p{n}-{now}",
            status=state,
            creator_id="urn:globus:auth:identity:0",
            request_id=f"p{n}-{now}",
            body={},
            start_time=datetime.now(UTC).isoformat(),
        )
        queue.enqueue(action.action_id, None, {"identity_id": "0"}, b"sealed")
        key = RequestKey(action.creator_id, action.request_id, "f")
        assert store.reserve(key, action.action_id, now, 60).outcome == "new"
        expires = None if state == "ACTIVE" else now + 1
        store.create(Stored.of(action), action, expires)
    assert len(queue.kept_tokens()) == 2
    assert store.purge(now + 2) == 1  # the finished one expired
    assert list(queue.kept_tokens()) == [f"p0-{now}"]
