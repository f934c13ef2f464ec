"""The ``aptools`` command: its help, ``dev``, ``fakeauth`` and ``check``."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from aptools.testing import FakeGlobusAuth

from .cli_support import Launched, cli_env
from .servers import aptools_cli, free_port

pytestmark = pytest.mark.e2e

COMMANDS = (
    "dev",
    "fakeauth",
    "check",
    "openapi",
    "serve",
    "worker",
    "rekey",
    "call",
    "flowtest",
    "register",
)


def test_help_names_every_command_with_a_line_each(tmp_path: Path) -> None:
    done = aptools_cli("--help", cwd=tmp_path, env=cli_env(COLUMNS="100"))
    assert done.returncode == 0
    for command in COMMANDS:
        line = re.search(rf"^\s+{command}\s+(\S.*)$", done.stdout, re.M)
        assert line, f"{command} is not listed: {done.stdout}"
        assert len(line.group(1).split()) >= 3
    for command in COMMANDS:
        sub = aptools_cli(command, "--help", cwd=tmp_path, env=cli_env())
        assert sub.returncode == 0 and sub.stdout.startswith("usage: aptools")


def _dev(tmp_path: Path, *args: str) -> tuple[Launched, list[str]]:
    proc = Launched("dev", *args, cwd=tmp_path, env=cli_env())
    said = proc.wait_for(lambda out: "Ctrl-C" in out)
    return proc, said.splitlines()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("face", ["wsgi", "asgi"])
def test_dev_commands_work_as_printed(tmp_path: Path, face: str) -> None:
    args = ["examples.watchasay.app", "--port", str(free_port())]
    proc, lines = _dev(tmp_path, *args, *(["--asgi"] if face == "asgi" else []))
    with proc:
        people = dict(
            re.findall(r"^  (\w+)\s+(urn:\S+)\s+token", "\n".join(lines), re.M)
        )
        assert set(people) == {"alice", "bob", "carol"}
        comments = [i for i, line in enumerate(lines) if line.startswith("# ")]
        commands = [lines[i + 1] for i in comments]
        assert len(commands) == 11
        urls = re.findall(r"http://\S+", "\n".join(commands))
        # API 1.1 routes only: no /run, /{id}/status, /{id}/release.
        assert all(re.search(r"/skeleton/(actions\b|$)", url) for url in urls), urls
        script = "set -e\n" + "\n".join(f"{c}\necho '<<<'" for c in commands)
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        outputs = [part.strip() for part in done.stdout.split("<<<")][:11]
        waited = outputs.pop(7).splitlines()  # the statuses both ended with
        assert [json.loads(o)["status"] for o in waited] == ["SUCCEEDED"] * 2
        (
            about,
            _,
            status,
            seen_by_carol,
            hidden_from_bob,
            _,
            canceled,
            released_by_carol,
            released,
            refused,
        ) = (json.loads(o) if o else {} for o in outputs[:10])
        assert about["title"] == "What Did You Say?"
        decoder, text = json.JSONDecoder(), done.stderr.strip()
        ran, end = decoder.raw_decode(text)
        managed, _ = decoder.raw_decode(text[end:].lstrip())
        assert ran["details"] == {"you_said": "hello"}
        assert ran["monitor_by"] == [people["carol"]]
        assert managed["manage_by"] == [people["carol"]]
        assert status["action_id"] == ran["action_id"] == released["action_id"]
        assert seen_by_carol["action_id"] == ran["action_id"]
        assert hidden_from_bob["code"] == "AuthenticationFailed"  # not his scope
        assert canceled["action_id"] == managed["action_id"]
        assert released_by_carol["action_id"] == managed["action_id"]
        assert refused["code"] == "AuthenticationFailed"
        assert (tmp_path / ".aptools" / "dev-actions.db").exists()


def test_dev_bob_may_not_run_a_provider_with_a_runner_list(tmp_path: Path) -> None:
    (tmp_path / "listed.py").write_text(
        "from aptools import Provider\n"
        "provider = Provider(title='Listed', scope='https://example.org/s',"
        " admin_contact='a@example.org', input_schema={'type': 'object'},"
        " runnable_by=['urn:globus:auth:identity:"
        "11111111-2222-4333-8444-555555555555'], synchronous=True)\n"
        "@provider.run\n"
        "def run(request, caller):\n"
        "    return {'who': caller.identity_id}\n"
    )
    proc, lines = _dev(tmp_path, "listed", "--port", str(free_port()))
    with proc:
        said = "\n".join(lines)
        assert "11111111-2222-4333-8444-555555555555" in said  # alice is the runner
        assert "run is answered 403" in said


def test_dev_refuses_other_addresses(tmp_path: Path) -> None:
    done = aptools_cli(
        "dev", "examples.watchasay.app", "--host", "0.0.0.0", cwd=tmp_path, timeout=30
    )
    assert done.returncode == 2
    assert "development" in done.stderr and "0.0.0.0" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("face", [[], ["--asgi"]])
def test_dev_says_when_the_port_is_taken(tmp_path: Path, face: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = ("dev", "examples.watchasay.app", "--port", port, *face)
        done = aptools_cli(*args, cwd=tmp_path, env=cli_env(), timeout=30)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("server", ["--wsgi", "--asgi"])
def test_fakeauth_serves_a_provider_under_gunicorn_and_uvicorn(
    tmp_path: Path, server: str
) -> None:
    fake_port = free_port()
    with Launched(
        "fakeauth", "examples.watchasay.app", "--port", str(fake_port),
        cwd=tmp_path, env=cli_env(),
    ) as fake:  # fmt: skip
        said = fake.wait_for(lambda out: "Ctrl-C" in out)
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", said, re.M))
        assert (
            exports["GLOBUS_SDK_SERVICE_URL_AUTH"] == f"http://127.0.0.1:{fake_port}/"
        )
        assert {"APTOOLS_CLIENT_ID", "APTOOLS_CLIENT_SECRET"} <= set(exports)
        tokens = dict(re.findall(r"^\s+(\w+)\s+urn:\S+\s+token (\S+)", said, re.M))
        assert set(tokens) == {"alice", "bob", "carol"}
        port = free_port()
        env = cli_env(
            **exports, APTOOLS_STORE=f"sqlite:///{tmp_path}/a.db", HOME=str(tmp_path)
        )
        args = ("serve", "examples.watchasay.app", server, "--port", str(port))
        with Launched(*args, cwd=tmp_path, env=env) as served:
            url = f"http://127.0.0.1:{port}/skeleton"
            served.ready(url + "/")
            body = ["--body", '{"input_string": "hi"}']
            ran = aptools_cli(
                "call", url, "run", "--token", tokens["alice"], *body,
                cwd=tmp_path, env=cli_env(),
            )  # fmt: skip
            assert ran.returncode == 0, ran.stderr
            assert json.loads(ran.stdout)["details"] == {"you_said": "hi"}
            refused = aptools_cli(
                "call", url, "run", "--token", tokens["bob"], *body,
                cwd=tmp_path, env=cli_env(),
            )  # fmt: skip
            assert refused.returncode == 1 and "401" in refused.stderr


def test_fakeauth_refuses_other_addresses(tmp_path: Path) -> None:
    done = aptools_cli("fakeauth", "--host", "0.0.0.0", cwd=tmp_path, timeout=30)
    assert done.returncode == 1 and "0.0.0.0" in done.stderr


def test_check_prints_store_and_routes(tmp_path: Path) -> None:
    done = aptools_cli("check", "examples.countdown.app", cwd=tmp_path, timeout=30)
    assert done.returncode == 0, done.stderr
    assert '"title": "Countdown"' in done.stdout
    assert "store: sqlite:///aptools-actions.db (store does not" in done.stdout
    assert "client: not set" in done.stdout
    assert "GET            /countdown/actions/{action_id}/log" in done.stdout
    assert "DELETE GET     /countdown/actions/{action_id}" in done.stdout


@pytest.mark.parametrize("offline", [(), ("--offline",)])
def test_check_creates_no_store(tmp_path: Path, offline: tuple[str, ...]) -> None:
    for url, file in (
        (None, tmp_path / "aptools-actions.db"),  # the default
        (f"sqlite:///{tmp_path}/given.db", tmp_path / "given.db"),
    ):
        env = cli_env() if url is None else cli_env(APTOOLS_STORE=url)
        done = aptools_cli(
            "check", "examples.countdown.app", *offline, cwd=tmp_path, env=env
        )
        assert done.returncode == 0, done.stderr
        assert "store does not exist yet; it will be created at first serve" in (
            done.stdout
        )
        assert sorted(p.name for p in tmp_path.iterdir()) == [], file
    # A directory that does not exist is an error, as serve would say.
    nowhere = cli_env(APTOOLS_STORE=f"sqlite:///{tmp_path}/no/such/dir/a.db")
    done = aptools_cli(
        "check", "examples.countdown.app", *offline, cwd=tmp_path, env=nowhere
    )
    assert done.returncode == 1 and "no/such/dir" in done.stderr
    assert not (tmp_path / "no").exists()
    # One that exists is opened and checked, without the note.
    made = tmp_path / "made.db"
    from aptools.store import SQLiteStore

    SQLiteStore(str(made)).close()
    env = cli_env(APTOOLS_STORE=f"sqlite:///{made}")
    done = aptools_cli(
        "check", "examples.countdown.app", *offline, cwd=tmp_path, env=env
    )
    assert done.returncode == 0 and "does not exist yet" not in done.stdout


def test_check_warns_of_a_placeholder_left_in_the_scope(tmp_path: Path) -> None:
    (tmp_path / "copied.py").write_text(
        "from aptools import Provider\n"
        "provider = Provider(title='x', admin_contact='a', input_schema={},\n"
        "    scope='https://auth.globus.org/scopes/<client-id>/action_all')\n"
        "provider.run(lambda request, caller: {})\n"
    )
    done = aptools_cli("check", "copied", "--offline", cwd=tmp_path, env=cli_env())
    assert done.returncode == 0, done.stderr
    assert "warning" in done.stderr and "placeholder <client-id>" in done.stderr
    kept = aptools_cli("check", "examples.countdown.app", cwd=tmp_path, env=cli_env())
    assert "warning" not in kept.stderr


def test_check_verifies_the_client_with_globus_auth(
    tmp_path: Path, auth: FakeGlobusAuth
) -> None:
    store = {"APTOOLS_STORE": "memory:"}
    good = aptools_cli(
        "check", "examples.watchasay.app", cwd=tmp_path, env=cli_env(auth, **store)
    )
    assert good.returncode == 0, good.stderr
    assert "client: Globus Auth accepts" in good.stdout
    wrong_secret = "not-the-secret-" + auth.client_secret[:6]
    env = cli_env(auth, **store, APTOOLS_CLIENT_SECRET=wrong_secret)
    wrong = aptools_cli("check", "examples.watchasay.app", cwd=tmp_path, env=env)
    assert wrong.returncode == 1
    assert wrong.stderr.count("\n") == 1 and "refused" in wrong.stderr
    assert wrong_secret not in wrong.stderr + wrong.stdout
    offline = aptools_cli(
        "check", "examples.watchasay.app", "--offline", cwd=tmp_path, env=env
    )
    assert offline.returncode == 0 and "not checked" in offline.stdout
    nowhere = cli_env(
        auth, **store, GLOBUS_SDK_SERVICE_URL_AUTH=f"http://127.0.0.1:{free_port()}/"
    )
    away = aptools_cli("check", "examples.watchasay.app", cwd=tmp_path, env=nowhere)
    assert away.returncode == 1 and "cannot reach Globus Auth" in away.stderr
    assert "Traceback" not in away.stderr


@pytest.mark.parametrize("command", ["check", "serve"])
def test_store_errors_are_one_line_without_the_password(
    tmp_path: Path, auth: FakeGlobusAuth, command: str
) -> None:
    url = "nosuchdb://app:hunter2-secret@db.example.org:5432/actions"
    env = cli_env(auth, APTOOLS_STORE=url)
    done = aptools_cli(command, "examples.watchasay.app", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "hunter2" not in done.stderr + done.stdout
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "nosuchdb://app:***@db.example.org:5432/actions" in done.stderr


def test_check_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(
        "from aptools import Provider\n"
        "provider = Provider(title='x', scope='s', admin_contact='a',"
        " input_schema={'type': 'object'})\n"
    )
    done = aptools_cli("check", "broken", cwd=tmp_path, env=cli_env(), timeout=30)
    assert done.returncode == 1
    assert "no run handler" in done.stderr
    missing = aptools_cli(
        "check", "no_such_module", cwd=tmp_path, env=cli_env(), timeout=30
    )
    assert missing.returncode == 1 and "no_such_module" in missing.stderr
    assert "Traceback" not in missing.stderr
    half = aptools_cli(
        "check", "examples.watchasay.app", cwd=tmp_path,
        env=cli_env(APTOOLS_CLIENT_ID="only-the-id"),
    )  # fmt: skip
    assert half.returncode == 1 and "APTOOLS_CLIENT_SECRET" in half.stderr


def _answers(sock: socket.socket, timeout: float = 10) -> bytes:
    """What the server sent until it stopped sending for a moment."""
    sock.settimeout(timeout)
    got = sock.recv(65536)
    sock.settimeout(0.5)
    try:
        while more := sock.recv(65536):
            got += more
    except TimeoutError:
        pass
    return got


@pytest.mark.parametrize("face", ["wsgi", "asgi"])
def test_expect_continue_refused_at_once_accepted_when_sent(
    tmp_path: Path, face: str
) -> None:
    port = free_port()
    args = ["dev", "examples.longjob.app", "--port", str(port)]
    args += ["--asgi"] if face == "asgi" else []
    head = (
        "POST /longjob/actions HTTP/1.1\r\nHost: x\r\n"
        "Authorization: Bearer dev-token-alice\r\n"
        "Content-Type: application/json\r\nExpect: 100-continue\r\n"
    )
    with Launched(*args, cwd=tmp_path, env=cli_env()) as proc:
        proc.wait_for(lambda out: "Ctrl-C" in out)
        # Too large: 413 without the body being asked for or sent.
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(f"{head}Content-Length: 5000000\r\n\r\n".encode())
            said = _answers(sock)
            finals = re.findall(rb"HTTP/1\.[01] (\d{3})", said)
            assert finals[-1] == b"413", said
            if face == "asgi":
                assert b"100" not in finals, said  # nothing was asked for
            assert b"PayloadTooLarge" in said
        # Small enough: the body is sent after 100 Continue and run.
        body = json.dumps({"request_id": "e1", "body": {"steps": 1}}).encode()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode())
            if face == "asgi":
                assert _answers(sock).startswith(b"HTTP/1.1 100")
            # (The development WSGI server answers in HTTP/1.0, which has no
            # 100 Continue: a client sends the body after a short wait.)
            sock.sendall(body)
            said = _answers(sock)
            assert re.search(rb"HTTP/1\.[01] 202", said), said
            assert b'"status":"ACTIVE"' in said
