"""The consent examples of the tutorial (docs/tutorial/consent.md), run as
written: the run-handler provider, the job provider and the test, against the
fake Globus Auth and a loopback stand-in for Transfer that the real globus-sdk
talks HTTP to."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import globus_sdk
import orjson
import pytest
from cryptography.fernet import Fernet

from aptools.testing import FakeGlobusAuth, FakeIdentity, ProviderClient

from .servers import ROOT
from .test_consent import check_waiting

TRANSFER = str(globus_sdk.TransferClient.scopes.all)
BODY = {"source": "ep-a", "destination": "ep-b", "path": "/data/x"}


class FakeTransfer(ThreadingHTTPServer):
    """Answers the three Transfer calls the examples make; keeps the bearer
    tokens it was called with."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.submitted: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, doc: dict[str, Any]) -> None:
                server.tokens.append(self.headers.get("Authorization", ""))
                data = orjson.dumps(doc)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.startswith("/v0.10/submission_id"):
                    self._answer({"value": "submission-1"})
                else:
                    task = self.path.rsplit("/", 1)[-1].split("?")[0]
                    self._answer(
                        {"task_id": task, "status": "SUCCEEDED", "files_transferred": 1}
                    )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.submitted.append(orjson.loads(self.rfile.read(length)))
                self._answer({"task_id": "task-1", "code": "Accepted"})

            def log_message(self, format: str, *args: Any) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


@pytest.fixture
def transfer(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTransfer]:
    server = FakeTransfer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", server.url)
    yield server
    server.shutdown()
    server.server_close()


def block(starting: str) -> str:
    page = (ROOT / "docs" / "tutorial" / "consent.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    [found] = [b for b in blocks if starting in b]
    return found


def load(name: str, auth: FakeGlobusAuth) -> dict[str, Any]:
    code = block(f"# {name}.py").replace(
        "https://auth.globus.org/scopes/<client-id>/action_all", auth.scope
    )
    module: dict[str, Any] = {"__name__": name}
    exec(compile(code, f"consent.md:{name}.py", "exec"), module)
    return module


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APTOOLS_STORE", "memory:")
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())


@pytest.mark.usefixtures("stores")
def test_the_run_handler_example(
    auth: FakeGlobusAuth, alice: FakeIdentity, transfer: FakeTransfer, flavour: str
) -> None:
    module = load("transfer_copy", auth)
    client = ProviderClient(module["provider"], flavour=flavour)
    auth.withhold_consent(alice, TRANSFER)
    ran = client.run(BODY, as_=alice)
    assert ran.status_code == 202
    check_waiting(ran.json, auth.scope, TRANSFER)
    assert transfer.submitted == []
    auth.grant_consent(alice, TRANSFER)
    resumed = client.resume(ran.json["action_id"], as_=alice)
    assert resumed.json["status"] == "ACTIVE"
    assert resumed.json["details"] == {"task_id": "task-1"}
    assert transfer.submitted[0]["DATA"][0]["source_path"] == "/data/x"
    done = client.status(ran.json["action_id"], as_=alice)
    assert done.json["status"] == "SUCCEEDED"
    assert done.json["details"] == {"task_id": "task-1", "files": 1}
    # Transfer saw dependent tokens of the caller's, never the caller's own
    assert transfer.tokens and all(
        t.startswith("Bearer fake-") and alice.token not in t for t in transfer.tokens
    )


@pytest.mark.usefixtures("stores")
def test_the_job_example(
    auth: FakeGlobusAuth, alice: FakeIdentity, transfer: FakeTransfer, flavour: str
) -> None:
    module = load("transfer_job", auth)
    provider = module["provider"]
    client = ProviderClient(provider, flavour=flavour)
    try:
        auth.withhold_consent(alice, TRANSFER)
        ran = client.run(BODY, as_=alice)
        assert ran.status_code == 202
        action_id = ran.json["action_id"]
        give_up = time.monotonic() + 20
        while client.status(action_id, as_=alice).json["status"] != "INACTIVE":
            assert time.monotonic() < give_up, "never INACTIVE"
            time.sleep(0.02)
        check_waiting(client.status(action_id, as_=alice).json, auth.scope, TRANSFER)
        auth.grant_consent(alice, TRANSFER)
        assert client.resume(action_id, as_=alice).json["status"] == "ACTIVE"
        done = client.wait(action_id, as_=alice)
        assert done.json["status"] == "SUCCEEDED", done.json
        assert done.json["details"] == {"task_id": "task-1", "files": 1}
    finally:
        provider.jobs.shutdown()


@pytest.mark.usefixtures("stores")
def test_the_test_example(
    auth: FakeGlobusAuth, alice: FakeIdentity, transfer: FakeTransfer
) -> None:
    module = load("transfer_copy", auth)
    test: dict[str, Any] = {
        "BODY": BODY,
        "TRANSFER": TRANSFER,
        "globus_sdk": globus_sdk,
    }
    exec(block("def test_copy_waits_for_consent"), test)
    test["test_copy_waits_for_consent"](auth, alice, ProviderClient(module["provider"]))
