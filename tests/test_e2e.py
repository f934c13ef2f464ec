"""End to end: the examples under real gunicorn (2 workers) and uvicorn, over
HTTP, with SQLite, authenticating through globus-sdk against the fake Globus Auth."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aptools.testing import FakeGlobusAuth, FakeIdentity, waiting

from .servers import Server

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["gunicorn", "uvicorn"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/actions.db"


@pytest.fixture
def watchasay(kind: str, auth: FakeGlobusAuth, db: str) -> Iterator[Server]:
    with Server(kind, "examples.watchasay.app", "/skeleton", auth, db) as server:
        yield server


@pytest.fixture
def countdown(kind: str, auth: FakeGlobusAuth, db: str) -> Iterator[Server]:
    with Server(kind, "examples.countdown.app", "/countdown", auth, db) as server:
        yield server


def test_watchasay_lifecycle(
    watchasay: Server, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    about = watchasay.call("GET", "/")
    assert about.status_code == 200
    assert about.json()["synchronous"] is True
    assert about.headers["Access-Control-Allow-Origin"] == "*"
    doc = {"request_id": "e2e-1", "body": {"input_string": "hi there"}}
    first = watchasay.call("POST", "/run", alice.token, json=doc)
    assert first.status_code == 202, first.text
    assert first.json()["details"] == {"you_said": "hi there"}
    action_id = first.json()["action_id"]
    again = watchasay.call("POST", "/actions", alice.token, json=doc)
    assert again.status_code == 200 and again.json()["action_id"] == action_id
    assert watchasay.call("GET", f"/{action_id}/status", bob.token).status_code == 404
    assert (
        watchasay.call("GET", f"/actions/{action_id}/", alice.token).json()["status"]
        == "SUCCEEDED"
    )
    assert (
        watchasay.call("DELETE", f"/actions/{action_id}", alice.token).status_code
        == 200
    )
    gone = watchasay.call("GET", f"/{action_id}/status", alice.token)
    assert gone.status_code == 404 and gone.json()["code"] == "NotFound"


def test_bad_input_over_http(watchasay: Server, alice: FakeIdentity) -> None:
    cases = [
        (b"not json", 400),
        (b"", 400),
        (b"[" * 100_000, 400),
        (b'{"request_id": "x", "body": {"input_string": 1}}', 400),
        (
            b'{"request_id": "x", "body": {"input_string": "'
            + b"x" * (2 * 1024 * 1024)
            + b'"}}',
            413,
        ),
    ]
    for raw, status in cases:
        result = watchasay.call(
            "POST",
            "/run",
            alice.token,
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        assert result.status_code == status, (raw[:40], result.text)
        assert set(result.json()) == {"code", "description"}
    assert watchasay.call("GET", "/no/such/path").status_code == 404
    assert watchasay.call("PATCH", "/run", alice.token).status_code == 405
    assert watchasay.call("POST", "/run").status_code == 401


def test_fifty_concurrent_identical_runs_make_one_action(
    watchasay: Server, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    token = auth.token(alice)  # new to the servers: also a cold authentication
    doc = {"request_id": "burst", "body": {"input_string": "once"}}
    with ThreadPoolExecutor(50) as pool:
        results = list(
            pool.map(
                lambda _: watchasay.call("POST", "/run", token, json=doc), range(50)
            )
        )
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 49 + [202], codes
    assert len({r.json()["action_id"] for r in results}) == 1


def test_workers_introspect_a_new_token_once(
    kind: str, auth: FakeGlobusAuth, alice: FakeIdentity, db: str
) -> None:
    # Two worker processes, 50 concurrent requests with a token neither has
    # seen, Globus Auth slow to answer: both workers get requests while the
    # first introspection is under way, and only one reaches Globus Auth.
    with Server(kind, "examples.watchasay.app", "/skeleton", auth, db, workers=2) as s:
        token = auth.token(alice)
        before = auth.calls["introspect"]
        auth.latency = 0.5
        try:
            with ThreadPoolExecutor(50) as pool:
                results = list(
                    pool.map(
                        lambda n: s.call(
                            "POST",
                            "/run",
                            token,
                            json={"request_id": f"w{n}", "body": {"input_string": "x"}},
                        ),
                        range(50),
                    )
                )
        finally:
            auth.latency = 0.0
        assert [r.status_code for r in results] == [202] * 50
        assert auth.calls["introspect"] == before + 1


def test_countdown_lifecycle_and_restart(
    countdown: Server, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    started = countdown.call(
        "POST",
        "/actions",
        alice.token,
        json={"request_id": "c1", "body": {"seconds": 1.5}},
    )
    assert started.status_code == 202, started.text
    action_id = started.json()["action_id"]
    assert started.json()["status"] == "ACTIVE"
    assert (
        countdown.call("POST", f"/{action_id}/release", alice.token).status_code == 409
    )
    listed = countdown.call("GET", "/actions", alice.token, params={"status": "active"})
    assert [a["action_id"] for a in listed.json()] == [action_id]
    assert (
        countdown.call("GET", "/actions", bob.token, params={"status": "active"}).json()
        == []
    )
    # A restart loses nothing that was accepted.
    countdown.stop()
    countdown.start()
    still = countdown.call("GET", f"/{action_id}/status", alice.token)
    assert still.status_code == 200 and still.json()["action_id"] == action_id
    # Its 1.5 s run out, it ends (the bound is generous: a loaded machine).
    done = waiting.wait_for(
        lambda: (
            (d := countdown.call("GET", f"/actions/{action_id}", alice.token).json())[
                "status"
            ]
            != "ACTIVE"
            and d
        ),
        "the countdown ended",
        timeout=30,
        every=0.1,
    )
    assert done["status"] == "SUCCEEDED"
    log = countdown.call("GET", f"/{action_id}/log", alice.token).json()
    assert [e["code"] for e in log["entries"]] == ["STARTED", "FINISHED"]
    assert (
        countdown.call("POST", f"/{action_id}/release", alice.token).status_code == 200
    )
    assert countdown.call("GET", f"/{action_id}/status", alice.token).status_code == 404


def test_countdown_cancel(countdown: Server, alice: FakeIdentity) -> None:
    started = countdown.call(
        "POST", "/run", alice.token, json={"request_id": "c2", "body": {"seconds": 30}}
    )
    action_id = started.json()["action_id"]
    canceled = countdown.call(
        "POST", f"/actions/{action_id}/cancel", alice.token
    ).json()
    assert canceled["status"] == "FAILED"
    assert "cancel" in canceled["display_status"].lower()
    assert (
        countdown.call("DELETE", f"/actions/{action_id}", alice.token).status_code
        == 200
    )


def test_auth_failure_over_http(
    watchasay: Server, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    token = auth.token(alice)
    auth.fail(500)
    started = time.monotonic()
    result = watchasay.call(
        "POST",
        "/run",
        token,
        json={"request_id": "down", "body": {"input_string": "x"}},
    )
    assert time.monotonic() - started < 8
    assert result.status_code == 503
    assert result.json()["code"] == "AuthServiceUnavailable"


def test_chunked_bodies_over_http(watchasay: Server, alice: FakeIdentity) -> None:
    """A body sent without Content-Length is read up to the limit (1 MiB)."""
    doc = b'{"request_id": "chunked-1", "body": {"input_string": "streamed"}}'
    pieces = [doc[i : i + 7] for i in range(0, len(doc), 7)]
    headers = {"Content-Type": "application/json"}
    ran = watchasay.call(
        "POST", "/run", alice.token, data=iter(pieces), headers=headers
    )
    assert ran.status_code == 202, ran.text
    assert ran.json()["details"] == {"you_said": "streamed"}
    big = [b'{"request_id": "chunked-2", "body": {"input_string": "']
    big += [b"x" * 65536] * 20 + [b'"}}']
    refused = watchasay.call(
        "POST", "/run", alice.token, data=iter(big), headers=headers
    )
    assert refused.status_code == 413, refused.text
    assert refused.json()["code"] == "PayloadTooLarge"


def test_an_http_version_line_the_app_does_not_take(
    auth: FakeGlobusAuth, db: str
) -> None:
    """uvicorn hands the app an ``HTTP/2.0`` request line; the app answers it."""
    import socket

    server = Server("uvicorn", "examples.watchasay.app", "/skeleton", auth, db)
    with server, socket.create_connection(("127.0.0.1", server.port), 10) as sock:
        sock.sendall(
            b"GET /skeleton/ HTTP/2.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] == b"505", answer
    assert b"content-type: application/json" in head.lower()
    assert b"HTTPVersionNotSupported" in body
