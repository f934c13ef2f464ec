"""``aptools flowtest``: every example passes under gunicorn and uvicorn; small
providers broken on purpose are each caught at the fault they carry."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import pytest
from cryptography.fernet import Fernet

from aptools.testing import FakeGlobusAuth, FakeIdentity

from .cli_support import cli_env, served
from .servers import ROOT, Server, free_port

pytestmark = pytest.mark.e2e

KEY = Fernet.generate_key().decode()
FAST = ("--backoff-scale", "0.05", "--timeout", "90")

# (module, prefix, body or None for the example made from the input schema)
EXAMPLES = [
    ("examples.watchasay.app", "/skeleton", None),
    ("examples.countdown.app", "/countdown", {"seconds": 0.5}),
    ("examples.longjob.app", "/longjob", {"steps": 2, "step_seconds": 0.1}),
    ("examples.metrics.app", "/metered", None),
]


def flowtest(
    *args: str, stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aptools.cli", "flowtest", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
    )


def example_server(
    kind: str, module: str, prefix: str, auth: FakeGlobusAuth, db: Path
) -> Server:
    server = Server(kind, module, prefix, auth, f"sqlite:///{db}")
    for name in ("LONGJOB_SCOPE", "METERED_SCOPE"):
        server.env[name] = auth.scope
    server.env["APTOOLS_ENCRYPTION_KEY"] = KEY
    server.env["LONGJOB_POLL_INTERVAL"] = "0.1"
    return server


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
@pytest.mark.parametrize(("module", "prefix", "body"), EXAMPLES)
def test_every_example_passes(
    kind: str,
    module: str,
    prefix: str,
    body: Any,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    bob: FakeIdentity,
    tmp_path: Path,
) -> None:
    given = [] if body is None else ["--body", json.dumps(body)]
    with example_server(kind, module, prefix, auth, tmp_path / "a.db") as server:
        for api in ("1.0", "1.1"):
            done = flowtest(
                server.url,
                "--token",
                alice.token,
                "--other-token",
                bob.token,
                "--api",
                api,
                *given,
                *FAST,
            )
            assert (done.returncode, done.stdout) == (0, ""), done.stderr
            assert "no departure" in done.stderr
            assert "SUCCEEDED" in done.stderr


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_consent_is_waited_for_then_resumed(
    kind: str,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    tmp_path: Path,
) -> None:
    scope = f"https://auth.globus.org/scopes/{uuid.uuid4()}/data_access"
    auth.withhold_consent(alice, scope)
    body = json.dumps({"steps": 1, "step_seconds": 0, "scope": scope})
    with example_server(
        kind, "examples.longjob.app", "/longjob", auth, tmp_path / "a.db"
    ) as server:
        # Standard input closed: it cannot be told, and says so.
        closed = flowtest(server.url, "--token", alice.token, "--body", body, *FAST)
        assert closed.returncode == 3, closed.stderr
        assert "consent needed for scope: " in closed.stderr
        assert scope in closed.stderr and closed.stdout == ""

        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "aptools.cli", "flowtest", server.url),
                *("--token", alice.token, "--body", body, *FAST),
            ],
            cwd=ROOT,
            env=cli_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        said: list[str] = []
        reader = threading.Thread(
            target=lambda: said.extend(iter(proc.stderr.readline, "")),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        try:
            deadline = time.monotonic() + 60
            while not any("press Enter" in line for line in said):
                assert proc.poll() is None, "".join(said)
                assert time.monotonic() < deadline, "".join(said)
                time.sleep(0.05)
            assert any(scope in line for line in said)
            auth.grant_consent(alice, scope)
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.wait(timeout=90) == 0, "".join(said)
            reader.join(timeout=10)
            assert proc.stdout is not None and proc.stdout.read() == ""
            assert any("resume: " in line for line in said), "".join(said)
            assert any("SUCCEEDED" in line for line in said), "".join(said)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def test_nothing_listening_is_exit_5() -> None:
    done = flowtest(f"http://127.0.0.1:{free_port()}/x", "--token", "t")
    assert done.returncode == 5 and "cannot reach" in done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""


def test_usage_errors_are_exit_2() -> None:
    assert flowtest("http://127.0.0.1:1/x").returncode == 2  # no --token
    scaled = flowtest("http://127.0.0.1:1/x", "--token", "t", "--backoff-scale", "0")
    assert scaled.returncode == 2
    # A body that is not JSON is refused before any call (nothing listens there).
    bad = flowtest("http://127.0.0.1:1/x", "--token", "t", "--body", "{nope")
    assert bad.returncode == 2 and bad.stderr.startswith("aptools flowtest: --body")
    missing = flowtest("http://127.0.0.1:1/x", "--token", "t", "--body", "@/no/such")
    assert missing.returncode == 2, missing.stderr
    assert missing.stderr.startswith("aptools flowtest: --body @/no/such")


# -- providers broken on purpose -----------------------------------------------------

ALICE = f"urn:globus:auth:identity:{uuid.uuid4()}"
BOB = f"urn:globus:auth:identity:{uuid.uuid4()}"
TOKENS = {"alice-token": ALICE, "bob-token": BOB}


class Flawed:
    """A hand-written provider (API 1.0 routes) that speaks the interface
    except for one ``flaw``; ``""`` is the sound one."""

    def __init__(self, flaw: str) -> None:
        self.flaw = flaw
        self.actions: dict[str, dict[str, Any]] = {}
        self.requests: dict[tuple[str, str], str] = {}
        self.polls: dict[str, int] = {}
        self.lock = threading.Lock()
        #: request_id of every run asked for with a body, in order.
        self.runs: list[str] = []
        self.failures = 2 if flaw == "flaky" else 0
        self.created = 0
        # "slow": the first run is held until a second one has been answered.
        self.arrivals = 0
        self.answered = threading.Event()

    def app(self) -> falcon.App[falcon.Request, falcon.Response]:
        app = falcon.App()
        app.req_options.strip_url_path_trailing_slash = True
        app.add_route("/flawed", self, suffix="root")
        app.add_route("/flawed/run", self, suffix="run")
        app.add_route("/flawed/{action_id}/status", self, suffix="status")
        app.add_route("/flawed/{action_id}/release", self, suffix="release")
        return app

    # -- answers --

    def error(self, resp: falcon.Response, status: int, code: str) -> None:
        resp.status = status
        if self.flaw == "text_errors":
            resp.content_type = "text/plain"
            resp.text = code
        else:
            resp.media = {"code": code, "description": f"{code} here"}

    def caller(self, req: falcon.Request, resp: falcon.Response) -> str | None:
        token = (req.get_header("Authorization") or "").removeprefix("Bearer ")
        who = TOKENS.get(token)
        if who is None:
            self.error(resp, 401, "AuthenticationFailed")
        return who

    def seen(self, who: str, action_id: str) -> dict[str, Any] | None:
        action = self.actions.get(action_id)
        if action is None:
            return None
        if action["creator_id"] != who and self.flaw != "leak":
            return None
        return action

    def shown(self, action: dict[str, Any]) -> dict[str, Any]:
        doc = dict(action)
        if self.flaw == "no_creator":
            del doc["creator_id"]
        return doc

    # -- routes --

    def on_get_root(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "types": ["Action"],
            "api_version": "1.0",
            "globus_auth_scope": "https://auth.globus.org/scopes/x/action_all",
            "title": "Flawed" * (30 if self.flaw == "long_title" else 1),
            "admin_contact": "ops@example.org",
            "synchronous": False,
            "log_supported": False,
            "visible_to": ["public"],
            "runnable_by": ["all_authenticated_users"],
            "input_schema": {
                "type": "object",
                "properties": {"n": {"type": "integer", "minimum": 2}},
                "required": ["n"],
            },
        }
        if self.flaw != "no_cors":
            resp.set_header("Access-Control-Allow-Origin", "*")

    def on_options_root(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = 204
        if self.flaw != "no_cors":
            resp.set_header("Access-Control-Allow-Origin", "*")
            resp.set_header("Access-Control-Allow-Methods", "GET, OPTIONS")

    def on_post_run(self, req: falcon.Request, resp: falcon.Response) -> None:
        who = self.caller(req, resp)
        if who is None:
            return
        document = req.get_media()
        if not isinstance(document.get("body"), dict) or "request_id" not in document:
            self.error(resp, 400, "BadRequest")
            return
        # The example made from the input schema satisfies it.
        assert isinstance(document["body"]["n"], int) and document["body"]["n"] >= 2
        key = (who, document["request_id"])
        first = False
        if self.flaw == "slow":
            with self.lock:
                self.arrivals += 1
                first = self.arrivals == 1
            if first:  # held past the client's timeout, until it sent again
                self.answered.wait(timeout=30)
        try:
            self.start(key, document, resp)
        finally:
            if self.flaw == "slow" and not first:
                self.answered.set()

    def start(
        self, key: tuple[str, str], document: dict[str, Any], resp: falcon.Response
    ) -> None:
        with self.lock:
            self.runs.append(document["request_id"])
            if self.failures:  # a 5xx the first times: the client must retry
                self.failures -= 1
                self.error(resp, 503, "Unavailable")
                return
            known = self.requests.get(key)
            if known is not None and self.flaw != "repeat_new":
                resp.media = self.shown(self.actions[known])
                return
            action_id = str(uuid.uuid4())
            self.created += 1
            self.requests[key] = action_id
            self.actions[action_id] = {
                "action_id": action_id,
                "status": "ACTIVE",
                "creator_id": key[0],
                "label": document.get("label"),
                "details": {"n": document["body"]["n"]},
                "start_time": (
                    "2026-12-01 10:00"
                    if self.flaw == "bad_time"
                    else "2026-12-01T10:00:00Z"
                ),
                "release_after": "30 days" if self.flaw == "bad_duration" else "P30D",
                "display_status": "Working" * (12 if self.flaw == "long_status" else 1),
            }
        resp.status = 200 if self.flaw == "new_action_200" else 202
        resp.media = self.shown(self.actions[action_id])

    def on_get_status(
        self, req: falcon.Request, resp: falcon.Response, action_id: str
    ) -> None:
        who = self.caller(req, resp)
        if who is None:
            return
        with self.lock:
            action = self.seen(who, action_id)
            if action is None:
                self.error(resp, 404, "NotFound")
                return
            self.polls[action_id] = self.polls.get(action_id, 0) + 1
            if self.polls[action_id] >= 2 and action["status"] == "ACTIVE":
                action["status"] = "SUCCEEDED"
                action["completion_time"] = (
                    "2026-12-01T09:00:00Z"
                    if self.flaw == "ends_before_start"
                    else "2026-12-01T10:00:05Z"
                )
                action["details"] = {"result": 4}
            resp.media = self.shown(action)

    def on_post_release(
        self, req: falcon.Request, resp: falcon.Response, action_id: str
    ) -> None:
        who = self.caller(req, resp)
        if who is None:
            return
        with self.lock:
            action = self.seen(who, action_id)
            if action is None:
                self.error(resp, 404, "NotFound")
                return
            if self.flaw != "keeps_released":
                del self.actions[action_id]
            resp.media = self.shown(action)


@pytest.fixture
def flawed(request: pytest.FixtureRequest) -> Iterator[str]:
    with served(Flawed(request.param).app()) as server:
        yield f"http://127.0.0.1:{server.port}/flawed"


def test_a_run_is_sent_again_unchanged_after_a_5xx() -> None:
    provider = Flawed("flaky")
    with served(provider.app()) as server:
        done = run_against(f"http://127.0.0.1:{server.port}/flawed")
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert "HTTP 503; trying again" in done.stderr
    # The first run (503 twice, then 202) and the deliberate repeat: one id.
    assert len(provider.runs) == 4 and len(set(provider.runs)) == 1
    assert len(provider.actions) == 0  # released


def run_against(url: str) -> subprocess.CompletedProcess[str]:
    return flowtest(url, "--token", "alice-token", "--other-token", "bob-token", *FAST)


@pytest.mark.parametrize("flawed", [""], indirect=True)
def test_the_sound_hand_written_provider_passes(flawed: str) -> None:
    done = run_against(flawed)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr


@pytest.mark.parametrize(
    ("flawed", "departure"),
    [
        ("new_action_200", "run: answered HTTP 200 (202 expected; 200 is for a"),
        ("no_creator", "run: creator_id is missing"),
        ("bad_time", "run: start_time is not an RFC 3339 date-time"),
        ("ends_before_start", "status: completion_time is before start_time"),
        ("bad_duration", "run: release_after is not an ISO 8601 duration"),
        ("long_status", "run: display_status is 84 characters long (1..64)"),
        ("long_title", "introspect: title is 180 characters long (1..128)"),
        ("leak", "status by another identity: answered HTTP 200 (404 expected"),
        ("repeat_new", "run repeated: answered another action, not the same one"),
        ("text_errors", "status of an unknown action: the HTTP 404 answer is not"),
        ("no_cors", "introspect: no Access-Control-Allow-Origin: * header"),
        ("keeps_released", "status after release: answered HTTP 200 (404 expected)"),
    ],
    indirect=["flawed"],
)
def test_each_fault_is_named(flawed: str, departure: str) -> None:
    done = run_against(flawed)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith(departure) for line in lines), done.stdout
    assert len(lines) == len(set(lines))  # one line per departure
    assert "departure(s) from the Action Provider Interface" in done.stderr


def test_a_run_is_sent_again_unchanged_after_a_timeout() -> None:
    provider = Flawed("slow")
    with served(provider.app()) as server:
        url = f"http://127.0.0.1:{server.port}/flawed"
        done = flowtest(url, "--token", "alice-token", "--request-timeout", "1", *FAST)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert "ReadTimeout; trying again" in done.stderr
    # The run, the run sent again after the timeout, and the deliberate repeat.
    assert len(provider.runs) == 3 and len(set(provider.runs)) == 1
    assert provider.created == 1


def test_a_run_always_refused_with_a_5xx_ends_after_a_few_tries() -> None:
    provider = Flawed("flaky")
    provider.failures = 1000
    with served(provider.app()) as server:
        done = run_against(f"http://127.0.0.1:{server.port}/flawed")
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("run: answered HTTP 503 (202 expected)")
    assert "aptools flowtest: the run was refused (HTTP 503)" in done.stderr
    assert len(provider.runs) == 8 and len(set(provider.runs)) == 1
