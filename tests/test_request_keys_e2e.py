"""End to end on PostgreSQL, two hosts (gunicorn with 2 workers, and uvicorn)
on one database: a host killed while a run handler runs frees that request's
key ``run_lease`` seconds after its last renewal, not minutes later, and the
same request then runs on the other host; while the holder lives, the same
request on the other host is never run a second time."""

from __future__ import annotations

import contextlib
import os
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from aptools.testing import FakeGlobusAuth, FakeIdentity

from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures
from .servers import ROOT, Server
from .test_postgresql_e2e import _kill_host

pytestmark = pytest.mark.e2e
pytest.importorskip("psycopg")

MODULE = textwrap.dedent(
    """
    import os, time
    from aptools import Provider

    provider = Provider(title="Keys", scope=os.environ["KEYS_SCOPE"],
                        admin_contact="ops@example.org", prefix="/keys",
                        input_schema={"type": "object"}, run_lease=2.0,
                        pending_wait=1.0)

    @provider.run
    def run(request, caller):
        with open(os.environ["KEYS_TRACE"], "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(float(os.environ["KEYS_HOLD"]))
        return {"pid": os.getpid()}

    app = provider.wsgi()
    asgi = provider.asgi()
    """
)


@pytest.fixture
def hosts(
    auth: FakeGlobusAuth, pg_url: str, tmp_path: Path
) -> Iterator[tuple[Server, Server, Path]]:
    (tmp_path / "keysmod.py").write_text(MODULE)
    trace = tmp_path / "trace.txt"
    trace.touch()
    made = (
        Server("gunicorn", "keysmod", "/keys", auth, pg_url),
        Server("uvicorn", "keysmod", "/keys", auth, pg_url),
    )
    for host, hold in zip(made, ("60", "0"), strict=True):
        host.env.update(
            PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}",
            KEYS_SCOPE=auth.scope,
            KEYS_TRACE=str(trace),
            KEYS_HOLD=hold,  # the first host's handler outlives it
        )
    with made[0], made[1]:
        yield made[0], made[1], trace


def post(host: Server, token: str) -> requests.Response:
    return host.call("POST", "/run", token, json={"request_id": "same", "body": {}})


def test_a_dead_hosts_request_key_is_free_within_seconds(
    hosts: tuple[Server, Server, Path], alice: FakeIdentity
) -> None:
    one, two, trace = hosts
    first = threading.Thread(target=lambda: _quietly(post, one, alice.token))
    first.start()
    give_up = time.monotonic() + 30
    while not trace.read_text() and time.monotonic() < give_up:
        time.sleep(0.05)
    assert trace.read_text(), "the run handler never started"
    # While the holder lives (renewing), the other host does not run it again.
    held = post(two, alice.token)
    assert held.status_code == 409, held.text
    assert "still being processed" in held.json()["description"]
    _kill_host(one)
    killed = time.monotonic()
    while True:
        got = post(two, alice.token)
        if got.status_code != 409 or time.monotonic() - killed > 30:
            break
        time.sleep(0.2)
    took = time.monotonic() - killed
    first.join(30)
    assert got.status_code == 202, got.text
    assert took < 2.0 + 5.0, took  # run_lease, a renewal period and slack
    assert len(trace.read_text().split()) == 2  # the dead one and this one


def _quietly(call: Any, *args: Any) -> None:
    with contextlib.suppress(requests.RequestException, RuntimeError):
        call(*args)  # the host is killed under it
