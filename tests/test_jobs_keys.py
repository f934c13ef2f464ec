"""The key ring that seals kept tokens: rotated mid-job, a key dropped too
soon (the operator's error, never a consent request), and ``aptools rekey``.
Both faces, every store; the command on a SQLite file."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from globus_sdk.scopes import TransferScopes

from aptools import Action, Caller, Job, SQLiteStore
from aptools.jobs.keys import seal
from aptools.testing import FakeGlobusAuth, FakeIdentity
from aptools.testing.waiting import wait_for
from tests.pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures
from tests.test_jobs import (  # noqa: F401 - fixtures
    Build,
    Gate,
    build,
    ended,
    new_store,
    status,
    store_kind,
)
from tests.test_jobs_kept_tokens import hold, kept, no_token_in

from .cli_support import cli_env
from .servers import aptools_cli

TRANSFER = str(TransferScopes.all)
SETTINGS: dict[str, Any] = {
    # Resumable: a process that goes hands its job back for another to go on.
    "resumable": True,
    "keep_tokens": True,
    "lease": 3600.0,
    "dependent_scopes": [TRANSFER],
}


def accepted_elsewhere(
    build: Build,  # noqa: F811
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
    key: bytes,
) -> str:
    """An action accepted, and its job held, by a process using ``key``,
    which then goes: the job is handed back with its tokens kept."""
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", key.decode())
    started = threading.Event()
    first, client = build(hold(Gate(), started), **SETTINGS)
    ran = client.run(alice, {"n": 1})
    assert ran.status_code == 202, ran.text
    wait_for(started.is_set, "the job started")
    first.jobs.shutdown()  # type: ignore[union-attr]
    action_id: str = ran.json["action_id"]
    return action_id


def test_the_key_is_rotated_mid_job(
    build: Build,  # noqa: F811 - the fixture imported above
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    action_id = accepted_elsewhere(build, alice, monkeypatch, old)
    monkeypatch.setattr(auth, "rotate_refresh_tokens", True)
    acted = threading.Event()
    gate = Gate()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        caller.authorizer(TRANSFER)  # refreshed: the rotated token is kept
        acted.set()
        gate.step(job)
        return {"acted": True}

    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", f"{new.decode()},{old.decode()}")
    second, client = build(work, **SETTINGS)
    second.jobs.runner()  # type: ignore[union-attr]
    wait_for(acted.is_set, "the job acted for its caller")
    sealed = kept(second)[action_id]
    Fernet(new).decrypt(sealed)  # written again: with the newest key
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(sealed)
    gate.go.release()
    done = ended(client, alice, action_id)
    assert done["status"] == "SUCCEEDED", done


def test_tokens_no_key_opens_are_the_operators_error(
    build: Build,  # noqa: F811
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    action_id = accepted_elsewhere(build, alice, monkeypatch, Fernet.generate_key())
    ran: list[str] = []

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        ran.append(action.action_id)
        return {}

    caplog.set_level(logging.INFO)
    # the old key dropped too soon
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    second, client = build(work, **SETTINGS)
    second.jobs.runner()  # type: ignore[union-attr]
    done = ended(client, alice, action_id)
    assert done["status"] == "FAILED"
    assert done["details"]["code"] == "TokensUnreadable"
    assert "operator" in done["details"]["description"]
    assert ran == []  # never run without its caller's tokens
    loud = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and action_id in r.getMessage()
    ]
    assert loud and "APTOOLS_ENCRYPTION_KEY" in loud[0].getMessage()
    no_token_in("\n".join(r.getMessage() for r in caplog.records))
    assert action_id not in kept(second)


@pytest.mark.e2e
def test_rekey_reseals_every_kept_token_with_the_newest_key(
    tmp_path: Path, auth: FakeGlobusAuth
) -> None:
    (tmp_path / "keyed.py").write_text(
        "from aptools import Provider\n"
        "provider = Provider(title='K', scope='https://auth.globus.org/scopes/"
        "k/all', admin_contact='a@example.org', input_schema={'type': 'object'},"
        f" store='sqlite:///{tmp_path}/a.db')\n"
        "@provider.job(keep_tokens=True)\n"
        "def work(action, caller, job):\n"
        "    return {}\n"
    )
    old, new, lost = (Fernet.generate_key() for _ in range(3))
    store = SQLiteStore(tmp_path / "a.db").for_provider(
        "https://auth.globus.org/scopes/k/all /"
    )
    queue = store.jobs()
    record = {"identity_id": "x", "identities": []}
    queue.enqueue("a1", None, record, seal(Fernet(old), {"s": "r"}, "t"))
    queue.enqueue("a2", None, record, seal(Fernet(new), {}, "t"))
    env = cli_env(auth, APTOOLS_ENCRYPTION_KEY=f"{new.decode()},{old.decode()}")
    done = aptools_cli("rekey", "keyed", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "2 job(s)" in done.stdout
    for sealed in queue.kept_tokens().values():
        Fernet(new).decrypt(sealed)
    queue.enqueue("a3", None, record, seal(Fernet(lost), {}, "t"))
    done = aptools_cli("rekey", "keyed", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "a3" in done.stderr and "a1" not in done.stderr
    no_token_in(done.stdout + done.stderr)
    # a command that runs no job needs no key at all
    bare = cli_env(auth)
    assert aptools_cli("openapi", "keyed", cwd=tmp_path, env=bare).returncode == 0
    checked = aptools_cli("check", "keyed", "--offline", cwd=tmp_path, env=bare)
    assert checked.returncode == 0, checked.stderr
    assert "dependent scopes: none declared" in checked.stdout
    assert "encryption key: not usable" in checked.stdout
    refused = aptools_cli("rekey", "keyed", cwd=tmp_path, env=bare)
    assert refused.returncode == 1
    assert "APTOOLS_ENCRYPTION_KEY" in refused.stderr
    store.close()


def test_without_a_key_an_asgi_server_fails_to_start_a_wsgi_one_runs_nothing(
    build: Build,  # noqa: F811
    alice: FakeIdentity,
    flavour: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("APTOOLS_ENCRYPTION_KEY", raising=False)

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        return {}

    caplog.set_level(logging.ERROR)
    _, client = build(work, **SETTINGS)
    if flavour == "asgi":
        with pytest.raises(RuntimeError, match="APTOOLS_ENCRYPTION_KEY"):
            client.call("GET", "/")  # the server's start-up fails
        return
    assert client.call("GET", "/").status_code == 200
    assert client.call("GET", "/actions", alice).status_code == 200
    for attempt in range(3):
        refused = client.run(alice, {"n": 1}, request_id=f"r{attempt}")
        _misconfigured(refused.status_code, refused.json, refused.headers)
    told = [r for r in caplog.records if r.name == "aptools.jobs"]
    # One line when the runner would start, one for the refused runs (not
    # one per request), and never a traceback.
    assert len(told) == 2, [r.getMessage() for r in told]
    assert all("APTOOLS_ENCRYPTION_KEY" in r.getMessage() for r in told)
    assert not any(r.exc_info for r in caplog.records)
    _not_ready(client.call("GET", "/ready").json)


def _misconfigured(answered: int, body: Any, headers: Any) -> None:
    """The answer to a run on a host without its key: the host's fault, 503,
    naming no setting to the caller."""
    assert answered == 503, body
    assert body["code"] == "ProviderMisconfigured"
    assert "operator" in body["description"]
    assert "APTOOLS_ENCRYPTION_KEY" not in str(body)
    assert int(headers["retry-after"]) > 0


def _not_ready(body: Any) -> None:
    assert body["ready"] is False
    assert body["code"] == "ProviderMisconfigured"
    assert "APTOOLS_ENCRYPTION_KEY" in body["description"]


def _asgi(app: Any, method: str, path: str, token: str, body: Any = None) -> Any:
    """One request to an ASGI app with no lifespan events (``uvicorn
    --lifespan off``): status, JSON body, headers."""
    data = b"" if body is None else json.dumps(body).encode()

    async def go() -> tuple[int, Any, dict[str, str]]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        given: list[bool] = []
        started: list[int] = []
        headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if given:
                return {"type": "http.disconnect"}
            given.append(True)
            return {"type": "http.request", "body": data, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.append(message["status"])
                headers.update((k.decode(), v.decode()) for k, v in message["headers"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(scope, receive, send)
        return started[0], json.loads(b"".join(chunks)), headers

    return asyncio.run(go())


def test_without_a_key_runs_are_503_and_the_host_is_not_ready(
    build: Build,  # noqa: F811
    alice: FakeIdentity,
    flavour: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Served by hand, as `gunicorn module:app` or `uvicorn --lifespan off`.
    monkeypatch.delenv("APTOOLS_ENCRYPTION_KEY", raising=False)

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        return {}

    caplog.set_level(logging.ERROR)
    provider, client = build(work, **SETTINGS)
    document = {"request_id": "nk1", "body": {"n": 1}}
    if flavour == "asgi":
        app = provider.asgi()
        for _ in range(2):
            _misconfigured(*_asgi(app, "POST", "/jobs/actions", alice.token, document))
        answered, ready, _ = _asgi(app, "GET", "/jobs/ready", alice.token)
    else:
        for _ in range(2):
            refused = client.call("POST", "/actions", alice, json=document)
            _misconfigured(refused.status_code, refused.json, refused.headers)
        answer = client.call("GET", "/ready")
        answered, ready = answer.status_code, answer.json
    assert answered == 503
    _not_ready(ready)
    refusals = [r for r in caplog.records if "refused (503)" in r.getMessage()]
    assert len(refusals) == 1 and not any(r.exc_info for r in caplog.records)
    # Nothing was kept of the refused runs: with the key, the same request runs.
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    if flavour == "wsgi":
        ran = client.call("POST", "/actions", alice, json=document)
        assert ran.status_code != 503, ran.text
