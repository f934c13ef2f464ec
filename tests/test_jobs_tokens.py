"""Acting as the caller for a whole job: refresh tokens kept encrypted."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from aptools import Action, Caller, Job, Provider, ProviderConfigError
from aptools.testing import FakeGlobusAuth, FakeIdentity
from tests.pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures
from tests.test_jobs import (  # noqa: F401 - fixtures
    SCHEMA,
    Build,
    Gate,
    build,
    ended,
    new_store,
    status,
    store_kind,
    wait_for,
)


def test_keeping_tokens_needs_a_well_formed_key(
    auth: FakeGlobusAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APTOOLS_ENCRYPTION_KEY", raising=False)

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        return {}

    def provider(**kw: Any) -> Provider:
        made = Provider(
            title="T",
            scope=auth.scope,
            admin_contact="a@example.org",
            input_schema=SCHEMA,
            store="memory:",
            **kw,
        )
        made.job(keep_tokens=True)(work)
        return made

    # Building the app (for its OpenAPI document, say) needs no key; running
    # its jobs does.
    engine = provider().compile().jobs
    assert engine is not None
    with pytest.raises(ProviderConfigError, match="APTOOLS_ENCRYPTION_KEY"):
        engine.runner()
    with pytest.raises(ProviderConfigError, match="URL-safe base64") as bad:
        provider(encryption_key="not-a-key-s3cr3t").compile().jobs.runner()  # type: ignore[union-attr]
    assert "s3cr3t" not in str(bad.value)
    good = Fernet.generate_key().decode()
    with pytest.raises(ProviderConfigError, match="key 2 of 2") as bad:
        provider(encryption_key=f"{good},s3cr3t").compile().jobs.keys  # type: ignore[union-attr]  # noqa: B018
    assert "s3cr3t" not in str(bad.value)
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", good)
    assert provider().compile().jobs.keys is not None  # type: ignore[union-attr]


def test_the_caller_is_acted_for_after_its_token_expired_and_a_take_over(
    build: Build,  # noqa: F811 - the fixture imported above
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    caller_token = auth.token(alice)
    gate = Gate()
    got: list[str] = []
    lock = threading.Lock()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        authorizer = caller.authorizer(auth.scope)
        with lock:
            got.append(authorizer.get_authorization_header() or "")
        if len(got) == 1 and not gate.step(job):  # the first run waits
            return {}
        return {"tokens": len(got)}

    caplog.set_level(logging.DEBUG)
    first, client = build(work, keep_tokens=True, lease=3600.0, resumable=True)
    action_id = client.run(caller_token, {"n": 1}).json["action_id"]
    wait_for(lambda: len(got) == 1, "a token for the scope, as the caller")
    first.jobs.shutdown()  # type: ignore[union-attr]  # handed back, tokens kept
    auth.revoke(caller_token)  # the caller's own token is of no use any more
    queue = first.store.jobs()
    assert queue is not None
    [held] = queue.claim("inspector", 60, 1)
    assert held.tokens is not None and b"fake-refresh-" not in held.tokens
    queue.hand_back([held.fence])
    second, other = build(work, keep_tokens=True, lease=3600.0, resumable=True)
    second.jobs.runner()  # type: ignore[union-attr]
    doc = ended(other, alice, action_id)
    assert doc["status"] == "SUCCEEDED", doc
    assert doc["details"] == {"tokens": 2}
    assert got[0] != got[1] and all(g.startswith("Bearer fake-") for g in got)
    assert auth.calls["dependent_token"] >= 2
    logged = "\n".join(r.getMessage() + str(r.args) for r in caplog.records)
    assert "fake-refresh-" not in logged
    assert "fake-refresh-" not in str(status(other, alice, action_id))


def test_a_development_key_is_made_once_and_kept(tmp_path: Path) -> None:
    from aptools.jobs.tokens import dev_key, load_key

    path = tmp_path / ".aptools" / "encryption-key"
    key = dev_key(path)
    assert dev_key(path) == key
    assert path.stat().st_mode & 0o077 == 0
    sealed = load_key(key).encrypt(b"x")
    assert load_key(dev_key(path)).decrypt(sealed) == b"x"
