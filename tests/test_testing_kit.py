"""The testing kit itself: server processes, and the fake Globus Auth's stop()."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import requests

from aptools.testing import FakeGlobusAuth
from aptools.testing.servers import ServerNotReady, launch, stop, wait_until_ready

from .servers import free_port

# Listens, holds its first connection without answering (the client's read
# times out), then answers every later one with 200.
SLOW_FIRST = """
import socket, sys
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
held = server.accept()[0]
while True:
    conn = server.accept()[0]
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n"
                 b"Connection: close\\r\\n\\r\\nok")
    conn.close()
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended; only its parent has not read its status yet.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_readiness_survives_a_read_timeout() -> None:
    port = free_port()
    proc = launch([sys.executable, "-c", SLOW_FIRST, str(port)])
    try:
        wait_until_ready(proc, f"http://127.0.0.1:{port}/", timeout=30)
        assert proc.poll() is None
    finally:
        stop(proc)
    assert proc.returncode is not None


@pytest.mark.parametrize("how", ["exits", "never answers"])
def test_a_server_that_never_gets_ready_leaves_no_process_behind(
    how: str, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    # A "master" that starts a "worker" in its group, then exits or hangs.
    script = f"sleep 300 & echo $! > {pids}; " + (
        "exit 3" if how == "exits" else "sleep 300"
    )
    proc = launch(["sh", "-c", script])
    with pytest.raises(
        ServerNotReady, match="exited" if how == "exits" else "no answer"
    ):
        wait_until_ready(proc, f"http://127.0.0.1:{free_port()}/", timeout=1.5)
    worker = int(pids.read_text())
    assert proc.returncode is not None
    for _ in range(50):
        if not alive(worker):
            break
        time.sleep(0.05)
    assert not alive(worker)


LEAVES_A_SERVER = """
import sys
from aptools.testing.servers import launch
import os, time
proc = launch(["sh", "-c", "sleep 300 & echo $! > " + sys.argv[1] + "; sleep 300"])
print(proc.pid, flush=True)
while not os.path.exists(sys.argv[1]):  # the worker is started
    time.sleep(0.01)
{ending}
"""


@pytest.mark.parametrize(
    "ending",
    [
        "",  # the program ends without stopping it
        "raise SystemExit(1)",  # a failed test's way out
        # pytest: a test that launched and failed; the session ends
        "import pytest; raise SystemExit(pytest.main(['-q', '-p', 'no:cacheprovider',"
        " '-p', 'no:xdist', '-p', 'no:randomly', sys.argv[2]]))",
    ],
)
def test_a_server_left_running_is_stopped_when_its_launcher_exits(
    ending: str, tmp_path: Path
) -> None:
    import subprocess

    pids = tmp_path / "pids"
    failing = tmp_path / "test_leaves.py"
    failing.write_text(
        "from aptools.testing.servers import launch\n"
        "def test_leaves():\n"
        f"    launch(['sh', '-c', 'sleep 300 & echo $! > {pids}2; sleep 300'])\n"
        "    assert False\n"
    )
    program = LEAVES_A_SERVER.format(ending=ending)
    done = subprocess.run(
        [sys.executable, "-c", program, str(pids), str(failing)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    leader = int(done.stdout.split()[0])
    workers = [int(pids.read_text())]
    if "pytest" in ending:
        workers.append(int((tmp_path / "pids2").read_text()))
    give_up = time.monotonic() + 30  # a bound for a loaded machine
    for pid in (leader, *workers):
        while alive(pid) and time.monotonic() < give_up:
            time.sleep(0.05)
        assert not alive(pid), (pid, done.stderr)


def test_stop_makes_globus_auth_unreachable_even_on_kept_alive_connections() -> None:
    fake = FakeGlobusAuth().start()
    alice = fake.identity("alice@example.org")
    url = fake.url + "v2/oauth2/token/introspect"
    credentials = (fake.client_id, fake.client_secret)
    with requests.Session() as session:
        before = session.post(url, data={"token": alice.token}, auth=credentials)
        assert before.json()["active"] is True
        fake.stop()
        for post in (session.post, requests.post):
            with pytest.raises(requests.ConnectionError):
                post(url, data={"token": alice.token}, auth=credentials, timeout=5)


def test_stop_during_a_hang_answers_nothing() -> None:
    import threading

    fake = FakeGlobusAuth().start()
    alice = fake.identity("alice@example.org")
    url = fake.url + "v2/oauth2/token/introspect"
    outcome: list[object] = []

    def ask() -> None:
        try:
            outcome.append(
                requests.post(
                    url,
                    data={"token": alice.token},
                    auth=(fake.client_id, fake.client_secret),
                    timeout=10,
                )
            )
        except requests.RequestException as exc:
            outcome.append(exc)

    fake.hang()
    thread = threading.Thread(target=ask)
    thread.start()
    while fake.calls["introspect"] == 0:
        time.sleep(0.01)
    fake.stop()
    thread.join()
    assert isinstance(outcome[0], requests.ConnectionError)
