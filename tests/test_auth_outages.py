"""Globus Auth slow, down, rate-limiting or on another clock: every answer is
bounded, failures are shared, and Globus Auth's verdict on a token stands."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import falcon.testing
import pytest

from aptools import ActionRequest, Caller, SQLiteStore
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import Client, MakeClient

GOOD = {"input_string": "hello"}


def together(client: Client, flavour: str, token: str, n: int) -> list[Any]:
    """``n`` runs with ``token`` at once; their answers."""
    headers = {"Authorization": f"Bearer {token}"}
    documents = [{"request_id": f"r{i}", "body": GOOD} for i in range(n)]
    if flavour == "wsgi":
        results: list[Any] = [None] * n

        def call(i: int) -> None:
            results[i] = client.call("POST", "/run", headers=headers, json=documents[i])

        threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    async def main() -> list[Any]:
        async with falcon.testing.ASGIConductor(client.app) as conductor:
            return list(
                await asyncio.gather(
                    *(
                        conductor.simulate_post(
                            client.prefix + "/run", headers=headers, json=doc
                        )
                        for doc in documents
                    )
                )
            )

    return asyncio.run(main())


# -- the clock ---------------------------------------------------------------


def test_globus_auths_active_beats_this_hosts_clock(
    make: MakeClient,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Globus Auth's clock 2 minutes behind this host's: a token with 60 s of
    # life left there has "expired" 60 s ago by this host's clock.
    monkeypatch.setattr(auth, "clock_offset", -120.0)
    _, client = make()
    token = auth.token(alice, expires_in=60)
    assert client.run(token, GOOD, request_id="one").status_code == 202
    # ... and the local clock bounds the caching: not kept, asked again.
    assert client.run(token, GOOD, request_id="two").status_code == 202
    assert auth.introspected(token) == 2
    # Globus Auth's "not active" stands too, whatever this host's clock says.
    monkeypatch.setattr(auth, "clock_offset", 120.0)
    gone = auth.token(alice, expires_in=-10)  # 110 s left by this host's clock
    refused = client.run(gone, GOOD, request_id="three")
    assert refused.status_code == 401 and "not active" in refused.json["description"]


def test_clock_skew_with_shared_introspections(
    make: MakeClient,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    monkeypatch.setattr(auth, "clock_offset", -120.0)
    _, first = make(store=SQLiteStore(tmp_path / "a.db"))
    _, second = make(store=SQLiteStore(tmp_path / "a.db"))
    token = auth.token(alice, expires_in=60)
    assert first.run(token, GOOD, request_id="one").status_code == 202
    assert second.run(token, GOOD, request_id="two").status_code == 202
    assert auth.introspected(token) == 2  # nothing kept past its exp


# -- outages -------------------------------------------------------------------


def test_a_hang_answers_every_waiter_together_with_retry_after(
    make: MakeClient,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    flavour: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, client = make(auth_timeout=0.5)
    token = auth.token(alice)
    auth.hang()
    with caplog.at_level(logging.WARNING, logger="aptools.auth"):
        answers = together(client, flavour, token, 8)
    gave_up = [r for r in caplog.records if "did not answer" in r.getMessage()]
    assert len(gave_up) == 1  # one introspection given up, said once
    assert [a.status_code for a in answers] == [503] * 8
    assert {a.json["code"] for a in answers} == {"AuthServiceUnavailable"}
    assert {a.headers.get("retry-after") for a in answers} == {"5"}
    # One introspection for all of them (globus-sdk may have retried it once).
    assert 1 <= auth.introspected(token) <= 2


def test_a_failure_is_shared_by_its_waiters(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, flavour: str
) -> None:
    _, client = make(auth_timeout=5)
    token = auth.token(alice)
    auth.hang()  # the requests pile up on one introspection ...
    threading.Timer(0.3, auth.fail, args=(500,)).start()  # ... which then fails
    answers = together(client, flavour, token, 8)
    assert [a.status_code for a in answers] == [503] * 8
    # The first attempt and globus-sdk's one retry; no waiter asked again.
    assert auth.introspected(token) == 2
    auth.recover()
    assert client.run(token, GOOD, request_id="after").status_code == 202


def test_cached_callers_are_answered_while_a_new_token_waits(
    make: MakeClient,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    bob: FakeIdentity,
    flavour: str,
) -> None:
    _, client = make(auth_timeout=5)
    assert client.run(bob, GOOD, request_id="warm").status_code == 202
    new = {"Authorization": f"Bearer {auth.token(alice)}"}
    cached = {"Authorization": f"Bearer {bob.token}"}
    run = client.prefix + "/run"

    def doc(name: str) -> dict[str, Any]:
        return {"request_id": name, "body": GOOD}

    auth.hang()
    if flavour == "wsgi":
        waiting: list[Any] = []
        thread = threading.Thread(
            target=lambda: waiting.append(
                client.simulate_post(run, headers=new, json=doc("new"))
            )
        )
        thread.start()
        try:
            quick = client.simulate_post(run, headers=cached, json=doc("cached"))
            pending = not waiting  # the new token is still waiting
        finally:
            auth.recover()
            thread.join()
        late = waiting[0]
    else:

        async def main() -> tuple[Any, bool, Any]:
            async with falcon.testing.ASGIConductor(client.app) as conductor:
                slow = asyncio.ensure_future(
                    conductor.simulate_post(run, headers=new, json=doc("new"))
                )
                await asyncio.sleep(0)
                try:
                    quick = await conductor.simulate_post(
                        run, headers=cached, json=doc("cached")
                    )
                    pending = not slow.done()
                finally:
                    auth.recover()
                return quick, pending, await slow

        quick, pending, late = asyncio.run(main())
    assert quick.status_code == 202
    assert pending
    assert late.status_code == 202


@pytest.mark.parametrize("status", [429, 503])
def test_globus_auths_retry_after_is_passed_on(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, status: int
) -> None:
    _, client = make()
    auth.fail(status, retry_after=7)
    answer = client.run(alice, GOOD)
    assert answer.status_code == 503
    assert answer.json["code"] == "AuthServiceUnavailable"
    assert answer.headers["retry-after"] == "7"
    auth.fail(500)
    assert client.run(alice, GOOD).headers["retry-after"] == "5"


# -- nothing secret in logs or answers ---------------------------------------------


def test_no_token_or_secret_in_logs_or_answers_during_auth_failures(
    make: MakeClient,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    transfer = "urn:globus:auth:scope:transfer.api.globus.org:all"
    granted: list[str] = []

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        info = caller.dependent_token(transfer)
        granted.extend(
            str(info[k]) for k in ("access_token", "refresh_token") if info.get(k)
        )
        return {}

    wrong_secret = "wrong-secret-never-logged"
    _, client = make(run=run, auth_timeout=0.5)
    _, misconfigured = make(client_secret=wrong_secret)
    secrets = [auth.client_secret, wrong_secret]
    tokens = []
    answers = []
    with caplog.at_level(logging.DEBUG):
        for failure in (400, 401, 429, 500, 503):
            auth.fail(failure)
            tokens.append(auth.token(alice))
            answers.append(client.run(tokens[-1], GOOD))
        auth.hang()
        tokens.append(auth.token(alice))
        answers.append(client.run(tokens[-1], GOOD))
        auth.recover()
        tokens.append(auth.token(alice))
        answers.append(misconfigured.run(tokens[-1], GOOD))
        revoked = auth.token(alice)
        auth.revoke(revoked)
        tokens.append(revoked)
        answers.append(client.run(revoked, GOOD))
        auth.withhold_consent(alice, transfer, refuse=True)
        answers.append(client.run(alice, GOOD))
        auth.grant_consent(alice, transfer)
        answers.append(client.run(alice, GOOD, request_id="granted"))
        tokens.append(alice.token)
    assert [a.status_code for a in answers] == [
        *(502, 502, 503, 503, 503, 503, 502, 401, 202, 202)
    ]
    assert answers[8].json["status"] == "INACTIVE"  # waits for consent
    assert granted  # a dependent token was granted and is secret as well
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    answered = "".join(a.text + str(a.headers) for a in answers)
    for secret in [*secrets, *tokens, *granted]:
        assert secret not in logged
        assert secret not in answered
