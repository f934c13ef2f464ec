"""``aptools serve``: its default server, idle and slow clients, checks at start."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import requests

from aptools.cli import tcp_listener
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .cli_support import Launched, cli_env
from .rawhttp import MALFORMED, broken_bodies, exchange, get, half_closed
from .servers import ROOT, aptools_cli, free_port, launch, stop, wait_until_ready

pytestmark = pytest.mark.e2e

WATCHASAY = "examples.watchasay.app"


@contextmanager
def serving(
    tmp_path: Path, auth: FakeGlobusAuth, *flags: str, store: str | None = None
) -> Iterator[tuple[Launched, str]]:
    """``aptools serve examples.watchasay.app FLAGS``, answering at the URL."""
    port = free_port()
    env = cli_env(
        auth,
        APTOOLS_STORE=store or f"sqlite:///{tmp_path}/actions.db",
        HOME=str(tmp_path),
    )
    args = ("serve", WATCHASAY, "--port", str(port), *flags)
    with Launched(*args, cwd=tmp_path, env=env) as server:
        url = f"http://127.0.0.1:{port}/skeleton"
        server.ready(url + "/")
        yield server, url


def _program(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_serve_without_a_flag_is_gunicorn_with_threaded_workers(
    tmp_path: Path, auth: FakeGlobusAuth
) -> None:
    help_text = aptools_cli("serve", "--help", cwd=tmp_path, env=cli_env()).stdout
    assert "gunicorn" in help_text and "the default" in help_text
    with serving(tmp_path, auth) as (server, url):
        argv = _program(server.proc.pid)  # serve became the server
        assert argv[1:3] == ["-m", "gunicorn"], argv
        worker = argv[argv.index("--worker-class") + 1]
        assert worker == "aptools.cli.gworker.ThreadWorker"  # gthread, idle-safe
        assert "gunicorn" in server.said() and "threads per worker" in server.said()
        assert requests.get(url + "/", timeout=10).status_code == 200


def test_serve_asgi_is_uvicorn(tmp_path: Path, auth: FakeGlobusAuth) -> None:
    with serving(tmp_path, auth, "--asgi") as (server, _):
        assert _program(server.proc.pid)[1:3] == ["-m", "uvicorn"]


# More idle connections than the server has threads (2 workers x 8): no
# thread may wait on one of them (plain gthread holds each for 5 s first,
# which left nobody answered for 15 s; sync workers, for 30 s).
IDLE = 40


@pytest.mark.parametrize("flags", [(), ("--wsgi",), ("--asgi",)])
def test_serve_answers_while_idle_connections_are_open(
    tmp_path: Path, auth: FakeGlobusAuth, flags: tuple[str, ...]
) -> None:
    with serving(tmp_path, auth, "--workers", "2", *flags) as (_, url):
        port = int(url.split(":")[2].split("/")[0])
        with ExitStack() as idle:
            for _ in range(IDLE):
                idle.enter_context(socket.create_connection(("127.0.0.1", port)))
            # A slow client: half a request line, then nothing.
            slow = idle.enter_context(socket.create_connection(("127.0.0.1", port)))
            slow.sendall(b"GET /skeleton/ HTTP/1.1\r\nHost: x\r\n")
            for _ in range(3):  # each may reach any worker
                assert requests.get(url + "/", timeout=10).status_code == 200


@pytest.mark.parametrize("face", ["--wsgi", "--asgi"])
def test_serve_refuses_the_memory_store_with_several_workers(
    tmp_path: Path, auth: FakeGlobusAuth, face: str
) -> None:
    env = cli_env(auth, APTOOLS_STORE="memory:")
    done = aptools_cli(
        "serve", WATCHASAY, face, "--workers", "2", "--port", str(free_port()),
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert "memory:" in done.stderr and "--workers 2" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_serve_takes_the_memory_store_with_one_worker(
    tmp_path: Path, auth: FakeGlobusAuth
) -> None:
    with serving(tmp_path, auth, "--workers", "1", store="memory:") as (_, url):
        assert requests.get(url + "/", timeout=10).status_code == 200


@pytest.mark.parametrize("face", ["--wsgi", "--asgi"])
def test_serve_checks_the_client_with_globus_auth_before_serving(
    tmp_path: Path, auth: FakeGlobusAuth, face: str
) -> None:
    wrong_secret = "wrong-" + auth.client_secret[:8]
    port = free_port()
    store = f"sqlite:///{tmp_path}/a.db"
    args = ("serve", WATCHASAY, face, "--port", str(port))
    env = cli_env(auth, APTOOLS_STORE=store, APTOOLS_CLIENT_SECRET=wrong_secret)
    done = aptools_cli(*args, cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "refused this client's credentials" in done.stderr
    assert wrong_secret not in done.stderr + done.stdout
    assert done.stderr.count("\n") == 1
    away = cli_env(
        auth,
        APTOOLS_STORE=store,
        GLOBUS_SDK_SERVICE_URL_AUTH=f"http://127.0.0.1:{port}/",
    )
    unreachable = aptools_cli(*args, cwd=tmp_path, env=away)
    assert unreachable.returncode == 1
    assert "cannot reach Globus Auth" in unreachable.stderr


def test_serve_checks_configuration_first(tmp_path: Path) -> None:
    env = cli_env(APTOOLS_CLIENT_ID="some-client")
    done = aptools_cli("serve", WATCHASAY, cwd=tmp_path, env=env, timeout=30)
    assert done.returncode == 1
    assert "APTOOLS_CLIENT_SECRET" in done.stderr


@pytest.mark.parametrize("face", ["--wsgi", "--asgi"])
def test_serve_and_call(tmp_path: Path, auth: FakeGlobusAuth, face: str) -> None:
    port = free_port()
    env = cli_env(
        auth, APTOOLS_STORE=f"sqlite:///{tmp_path}/serve.db", HOME=str(tmp_path)
    )
    args = ("serve", "examples.countdown.app", face, "--port", str(port))
    with Launched(*args, "--workers", "2", cwd=tmp_path, env=env) as server:
        base = f"http://127.0.0.1:{port}/countdown"
        server.ready(base + "/")
        if face == "--wsgi":
            # Its own control socket: a second server would not take this one's.
            control = tmp_path / ".gunicorn" / f"aptools-{port}.ctl"
            waited = time.monotonic() + 10  # opened after the workers boot
            while not control.exists() and time.monotonic() < waited:
                time.sleep(0.05)
            assert control.exists()
            assert not (tmp_path / ".gunicorn" / "gunicorn.ctl").exists()
        alice = auth.identity("alice@example.org")
        token = ["--token", alice.token]
        done = aptools_cli(
            "call", base, "run", *token, "--body", '{"seconds": 1}', "--wait",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        final = json.loads(done.stdout)
        assert final["status"] == "SUCCEEDED"
        assert "ACTIVE" in done.stderr  # progress was shown while waiting
        action = final["action_id"]
        released = aptools_cli(
            "call", base, "release", action, *token, cwd=tmp_path, env=env
        )
        assert released.returncode == 0
        assert json.loads(released.stdout)["status"] == "SUCCEEDED"
        gone = aptools_cli(
            "call", base, "status", action, *token, cwd=tmp_path, env=env
        )
        assert gone.returncode == 1 and "NotFound" in gone.stderr


def test_tcp_listener_hands_nodelay_to_every_connection() -> None:
    # aptools serve --asgi --workers N gives uvicorn this socket (--fd): the
    # connections it accepts must not wait on Nagle's algorithm.
    bound = tcp_listener("127.0.0.1", 0)
    try:
        assert bound.get_inheritable()
        bound.listen()
        with socket.create_connection(bound.getsockname(), timeout=5):
            accepted, _ = bound.accept()
            with accepted:
                nodelay = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert nodelay != 0
    finally:
        bound.close()


def test_serve_says_when_the_port_is_taken(
    tmp_path: Path, auth: FakeGlobusAuth
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = aptools_cli(
            "serve", WATCHASAY, "--asgi", "--workers", "2", "--port", str(port),
            cwd=tmp_path, env=cli_env(auth, APTOOLS_STORE=f"sqlite:///{tmp_path}/a.db"),
        )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_serve_without_the_auth_check_starts_with_any_secret(
    tmp_path: Path, auth: FakeGlobusAuth
) -> None:
    port = free_port()
    env = cli_env(
        auth,
        APTOOLS_STORE=f"sqlite:///{tmp_path}/a.db",
        APTOOLS_CLIENT_SECRET="wrong",
        HOME=str(tmp_path),
    )
    args = ("serve", WATCHASAY, "--no-auth-check", "--port", str(port))
    with Launched(*args, cwd=tmp_path, env=env) as server:
        server.ready(f"http://127.0.0.1:{port}/skeleton/")
        alice = auth.identity("alice@example.org")
        headers = {"Authorization": f"Bearer {alice.token}"}
        ran = requests.post(
            f"http://127.0.0.1:{port}/skeleton/actions",
            json={"request_id": "r1", "body": {"input_string": "hi"}},
            headers=headers,
            timeout=30,
        )
        assert ran.status_code == 502  # found per request, as the check would have


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("postgresql://:s3cret@[::1]/x", "postgresql://:***@[::1]/x"),
        ("postgresql://app@db/x", "postgresql://app@db/x"),
        ("sqlite:////var/lib/a.db", "sqlite:////var/lib/a.db"),
        ("memory:", "memory:"),
    ],
)
def test_store_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    from aptools.cli.common import redact

    assert redact(url) == shown


@pytest.mark.parametrize("command", ["serve", "check", "jobs"])
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:Sup3r%zzSecret@127.0.0.1/x",
        "postgresql://app:Sup3rSecret@127.0.0.1/x?bogusopt=1",
    ],
)
def test_a_store_url_libpq_cannot_read_is_one_line_without_its_password(
    tmp_path: Path, auth: FakeGlobusAuth, command: str, url: str
) -> None:
    env = cli_env(auth, APTOOLS_STORE=url)
    done = aptools_cli(command, WATCHASAY, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
    assert "bad PostgreSQL store URL" in done.stderr
    assert "Sup3r" not in done.stderr and "***" in done.stderr


@pytest.mark.parametrize(
    ("face", "server"), [("--wsgi", "gunicorn"), ("--asgi", "uvicorn")]
)
def test_serve_without_its_server_says_how_to_install_it_before_anything(
    tmp_path: Path, face: str, server: str
) -> None:
    # The working directory comes first on the import path: a module there
    # that cannot be imported stands for the server not being installed.
    (tmp_path / f"{server}.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{server}'\")\n"
    )
    env = cli_env(APTOOLS_STORE=f"sqlite:///{tmp_path}/a.db")
    done = aptools_cli("serve", WATCHASAY, face, cwd=tmp_path, env=env, timeout=30)
    assert done.returncode == 1
    assert done.stdout == ""  # no banner
    assert done.stderr == (
        f"aptools serve: {server} is not installed: pip install 'aptools[serve]'\n"
    )
    assert not (tmp_path / "a.db").exists()  # said before the store was opened


@pytest.mark.parametrize("command", [("serve",), ("check", "--offline")])
def test_a_closed_postgresql_port_names_the_store_once(
    tmp_path: Path, auth: FakeGlobusAuth, command: tuple[str, ...]
) -> None:
    url = "postgresql://postgres:s3cret@127.0.0.1:1/x?connect_timeout=2"
    env = cli_env(auth, APTOOLS_STORE=url)
    done = aptools_cli(*command[:1], WATCHASAY, *command[1:], cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "cannot connect" in done.stderr
    assert done.stderr.count("127.0.0.1:1/x") == 1, done.stderr
    assert "s3cret" not in done.stderr and "***" in done.stderr


@pytest.mark.parametrize("face", ["--wsgi", "--asgi"])
def test_serve_answers_malformed_requests_in_json(
    tmp_path: Path, auth: FakeGlobusAuth, face: str
) -> None:
    with serving(tmp_path, auth, face) as (_, url):
        port = int(url.split(":")[2].split("/")[0])
        for what, request in MALFORMED.items():
            answer = exchange(port, request, timeout=30)
            assert 400 <= answer.status < 500, (what, answer)
            assert answer.headers["content-type"] == "application/json", (what, answer)
            error = answer.json()
            assert set(error) == {"code", "description"}, what
            # (httptools takes a 100 kB header: the app refuses the token; h11
            # unfolds a folded header line, as RFC 9112 section 5.2 lets a
            # server do, and the app answers the path "/", outside the prefix)
            refusals = (
                "BadRequest",
                "RequestHeaderFieldsTooLarge",
                "AuthenticationFailed",
                *(("NotFound",) if what == "a folded header line" else ()),
            )
            assert error["code"] in refusals, what
            assert "nonsense" not in error["description"], what  # never quoted
        # The same server serves the next well-formed request.
        assert exchange(port, get("/skeleton/")).status == 200


@pytest.mark.parametrize("face", ["--wsgi", "--asgi"])
def test_a_body_whose_framing_is_broken_is_refused_and_never_run(
    tmp_path: Path, auth: FakeGlobusAuth, alice: FakeIdentity, face: str
) -> None:
    with serving(tmp_path, auth, face) as (_, url):
        port = int(url.split(":")[2].split("/")[0])
        document = json.dumps(
            {"request_id": "framed", "body": {"input_string": "hi"}}
        ).encode()
        for what, request in broken_bodies(
            "/skeleton/actions", alice.token, document
        ).items():
            answer = half_closed(port, request)
            # Refused in JSON, or the connection closed unanswered (uvicorn
            # drops a message it cannot finish): never a 500.
            if answer is not None:
                assert 400 <= answer.status < 500, (what, answer)
                assert answer.headers["content-type"] == "application/json", what
                assert json.loads(answer.body)["code"] == "BadRequest", what
        listed = requests.get(
            url + "/actions",
            headers={"Authorization": f"Bearer {alice.token}"},
            timeout=30,
        )
        assert listed.status_code == 200
        assert listed.json() == []  # none of them ran
        # The server still serves a well-formed request.
        assert exchange(port, get("/skeleton/")).status == 200


@pytest.mark.parametrize("protocol", ["H11JSONErrors", "JSONErrorsProtocol"])
def test_uvicorn_protocols_answer_json_to_what_they_cannot_parse(
    tmp_path: Path, auth: FakeGlobusAuth, protocol: str
) -> None:
    # Both of uvicorn's parsers (h11, and httptools when installed).
    port = free_port()
    env = {**cli_env(auth, APTOOLS_STORE="memory:"), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "uvicorn", "--port", str(port), "--http"]
    command += [f"aptools.cli.uvproto:{protocol}", f"{WATCHASAY}:asgi"]
    proc = launch(command, cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(proc, f"http://127.0.0.1:{port}/skeleton/", timeout=90)
        answer = exchange(port, MALFORMED["a raw CR in the path"])
        assert answer.status == 400 and answer.json()["code"] == "BadRequest"
        assert answer.headers["content-type"] == "application/json"
    finally:
        stop(proc)


def test_serve_starts_each_workers_job_runner_at_boot(
    tmp_path: Path, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    from cryptography.fernet import Fernet

    from aptools.store import open_store

    store_url = f"sqlite:///{tmp_path}/jobs.db"
    env = cli_env(
        auth,
        APTOOLS_STORE=store_url,
        HOME=str(tmp_path),
        LONGJOB_SCOPE=auth.scope,
        APTOOLS_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    )
    module, body = "examples.longjob.app", {"steps": 20, "step_seconds": 0.5}
    # A job handed back unfinished by a server that stopped (SIGTERM) ...
    port = free_port()
    with Launched("serve", module, "--port", str(port), cwd=tmp_path, env=env) as a:
        url = f"http://127.0.0.1:{port}/longjob"
        a.ready(url + "/")
        ran = requests.post(
            url + "/actions",
            json={"request_id": "boot-1", "body": body},
            headers={"Authorization": f"Bearer {alice.token}"},
            timeout=30,
        )
        assert ran.status_code == 202, ran.text
        action_id = ran.json()["action_id"]
    store = open_store(store_url).for_provider(f"{auth.scope} /longjob")
    left = store.get(action_id, time.time())
    assert left is not None and left.status == "ACTIVE"
    # ... is finished by the next server's worker though nobody calls it.
    port = free_port()
    with Launched("serve", module, "--port", str(port), cwd=tmp_path, env=env) as b:
        b.wait_for(lambda out: "Booting worker" in out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = store.get(action_id, time.time())
            if now is not None and now.status != "ACTIVE":
                break
            time.sleep(0.2)
        assert now is not None and now.status == "SUCCEEDED", (now, b.said())
    store.close()
