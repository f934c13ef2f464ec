"""The examples, tested as a provider author would: with the public testing kit."""

from __future__ import annotations

import os

import pytest

from aptools.testing import FakeGlobusAuth, ProviderClient, load_provider

MEMORY = {"APTOOLS_STORE": "memory:"}


@pytest.mark.parametrize("api", ["1.0", "1.1"])
def test_watchasay(fake_globus_auth: FakeGlobusAuth, flavour: str, api: str) -> None:
    provider = load_provider("examples.watchasay.app", environment=MEMORY)
    fake_globus_auth.scope = provider.scope
    alice = fake_globus_auth.identity("alice@example.org")
    client = ProviderClient(provider, flavour=flavour, api=api)

    about = client.introspect().json
    assert about["synchronous"] is True and about["visible_to"] == ["public"]
    ran = client.run({"input_string": "hi"}, as_=alice)
    assert ran.status_code == 202
    assert ran.json["status"] == "SUCCEEDED"
    assert ran.json["details"] == {"you_said": "hi"}
    assert client.run({"input_string": "hi", "x": 1}, as_=alice).status_code == 400
    # enumerate, though the example registers no handler for it
    listed = client.enumerate(as_=alice, status="succeeded")
    assert [a["action_id"] for a in listed.json] == [ran.json["action_id"]]
    assert client.release(ran.json["action_id"], as_=alice).status_code == 200
    assert client.enumerate(as_=alice, status="succeeded").json == []


def test_countdown(fake_globus_auth: FakeGlobusAuth, flavour: str) -> None:
    provider = load_provider("examples.countdown.app", environment=MEMORY)
    fake_globus_auth.scope = provider.scope
    alice = fake_globus_auth.identity("alice@example.org")
    bob = fake_globus_auth.identity("bob@example.org")
    client = ProviderClient(provider, flavour=flavour)

    assert client.introspect().json["log_supported"] is True
    assert client.run({"seconds": 61}, as_=alice).status_code == 400
    assert client.run({"seconds": -1}, as_=alice).status_code == 400
    # Long enough to be unfinished at the release below on a loaded machine.
    started = client.run({"seconds": 4}, as_=alice)
    assert started.status_code == 202 and started.json["status"] == "ACTIVE"
    action_id = started.json["action_id"]
    assert client.status(action_id, as_=bob).status_code == 404
    assert client.release(action_id, as_=alice).status_code == 409
    assert [a["action_id"] for a in client.enumerate(as_=alice).json] == [action_id]
    assert client.enumerate(as_=bob).json == []

    done = client.wait(action_id, as_=alice, timeout=30)
    assert done.json["status"] == "SUCCEEDED"
    assert client.enumerate(as_=alice).json == []
    log = client.log(action_id, as_=alice, reverse_order=True)
    assert [e["code"] for e in log.json["entries"]] == ["FINISHED", "STARTED"]
    assert client.release(action_id, as_=alice).status_code == 200

    long = client.run({"seconds": 30}, as_=alice).json["action_id"]
    canceled = client.cancel(long, as_=alice).json
    assert canceled["status"] == "FAILED" and canceled["display_status"] == "Canceled"
    assert client.status(long, as_=alice).json["status"] == "FAILED"


def test_client_over_http_and_failure_switches(
    fake_globus_auth: FakeGlobusAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .servers import Server

    monkeypatch.setenv("WATCHASAY_SCOPE", fake_globus_auth.scope)
    alice = fake_globus_auth.identity("alice@example.org")
    with Server(
        "uvicorn", "examples.watchasay.app", "/skeleton", fake_globus_auth, "memory:"
    ) as server:
        client = ProviderClient(server.url)
        ran = client.run({"input_string": "over http"}, as_=alice)
        assert ran.status_code == 202
        assert ran.json["details"] == {"you_said": "over http"}
        fake_globus_auth.fail(500)
        stranger = fake_globus_auth.identity("new@example.org")
        assert client.status(ran.json["action_id"], as_=stranger).status_code == 503


@pytest.mark.parametrize("test", ["first", "second"])
def test_each_test_loads_the_provider_against_its_own_globus_auth(
    test: str, flavour: str
) -> None:
    # Each parameter is a test of its own, with a fake Globus Auth of its own
    # (a new client, a new port): the provider must follow it.
    with FakeGlobusAuth() as auth, auth.environment():
        provider = load_provider("examples.watchasay.app", environment=MEMORY)
        auth.scope = provider.scope
        alice = auth.identity(f"alice-{test}@example.org")
        client = ProviderClient(provider, flavour=flavour)
        ran = client.run({"input_string": test}, as_=alice)
        assert ran.status_code == 202, ran.text
        assert ran.json["details"] == {"you_said": test}


def test_load_provider_restores_the_environment_and_names_problems(
    fake_globus_auth: FakeGlobusAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APTOOLS_STORE", raising=False)
    provider = load_provider("examples.watchasay.app:provider", environment=MEMORY)
    assert provider.title
    assert "APTOOLS_STORE" not in os.environ
    with pytest.raises(LookupError, match="not a Provider"):
        load_provider("examples.watchasay.app:app", environment=MEMORY)
    with pytest.raises(LookupError, match="0 providers"):
        load_provider("examples.watchasay")
