"""End to end: fair share and the run rate on two servers sharing one store
(gunicorn with 2 workers, and uvicorn), on a SQLite file and on PostgreSQL
(two hosts): a waiting action's place is the same whichever answers and
follows the caller's jobs as they end, another caller's job starts at once,
and a caller's runs are counted together by every process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from aptools.testing import FakeGlobusAuth, FakeIdentity

from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures
from .servers import Server
from .test_jobs_e2e import FAST_TAKE_OVER, wait_for

pytestmark = pytest.mark.e2e

KEY = Fernet.generate_key().decode()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fair.db'}"
    pytest.importorskip("psycopg")
    url: str = request.getfixturevalue("pg_url")
    return url


def _hosts(auth: FakeGlobusAuth, url: str, **env: str) -> Iterator[Server]:
    for kind in ("gunicorn", "uvicorn"):
        server = Server(kind, "examples.longjob.app", "/longjob", auth, url)
        server.env["LONGJOB_SCOPE"] = auth.scope
        server.env["APTOOLS_ENCRYPTION_KEY"] = KEY
        server.env.update(FAST_TAKE_OVER)
        server.env.update(env)
        yield server


def _run(server: Server, who: FakeIdentity, request_id: str, steps: int) -> Any:
    body = {"steps": steps, "step_seconds": 0.1}
    return server.call(
        "POST", "/run", who.token, json={"request_id": request_id, "body": body}
    )


def _status(server: Server, who: FakeIdentity, action_id: str) -> dict[str, Any]:
    got = server.call("GET", f"/{action_id}/status", who.token)
    assert got.status_code == 200, got.text
    doc: dict[str, Any] = got.json()
    return doc


def _runs(server: Server, who: FakeIdentity, action_id: str) -> bool:
    """Whether the action's job is working (a step done)."""
    return bool(_status(server, who, action_id)["details"].get("done", 0) >= 1)


def _queued(ahead: int) -> str:
    return f"Queued: {ahead} of your jobs ahead (at most 1 at once)"


def test_a_waiting_actions_place_is_shared_and_follows_the_callers_jobs(
    auth: FakeGlobusAuth, alice: FakeIdentity, bob: FakeIdentity, store_url: str
) -> None:
    one, two = servers = list(_hosts(auth, store_url, LONGJOB_MAX_JOBS_PER_CALLER="1"))
    try:
        for server in servers:
            server.start()
        mine = []
        for k, server in enumerate((one, two, one)):
            got = _run(server, alice, f"m{k}", 3000)
            assert got.status_code == 202, got.text
            mine.append(got.json()["action_id"])
        wait_for(lambda: _runs(two, alice, mine[0]), "her first job works")
        got = _run(two, bob, "t0", 3000)
        assert got.status_code == 202, got.text
        theirs = got.json()["action_id"]
        wait_for(lambda: _runs(one, bob, theirs), "the other caller's job works")
        for server in servers:
            shown = [_status(server, alice, a)["display_status"] for a in mine[1:]]
            assert shown == [_queued(1), _queued(2)], server.kind
        assert one.call("POST", f"/{mine[0]}/cancel", alice.token).status_code == 200
        wait_for(lambda: _runs(one, alice, mine[1]), "her second job works")
        for server in servers:
            waiting = _status(server, alice, mine[2])
            assert waiting["display_status"] == _queued(1), server.kind
            assert waiting["details"]["done"] == 0
        assert two.call("POST", f"/{mine[1]}/cancel", alice.token).status_code == 200
        wait_for(lambda: _runs(two, alice, mine[2]), "her last job works")
        for server in servers:
            shown = _status(server, alice, mine[2])["display_status"]
            assert not shown.startswith("Queued"), shown
    finally:
        for server in servers:
            server.stop()


def test_a_callers_runs_are_counted_by_every_process(
    auth: FakeGlobusAuth, alice: FakeIdentity, bob: FakeIdentity, store_url: str
) -> None:
    one, two = servers = list(
        _hosts(auth, store_url, LONGJOB_MAX_RUNS_PER_CALLER="3/600")
    )
    try:
        for server in servers:
            server.start()
        # gunicorn's two workers and uvicorn: three processes, one count.
        for k, server in enumerate((one, one, two)):
            assert _run(server, alice, f"r{k}", 1).status_code == 202
        for server in servers:
            refused = _run(server, alice, "r3", 1)
            assert refused.status_code == 429, refused.text
            assert refused.json()["code"] == "TooManyRequests"
            assert 1 <= int(refused.headers["Retry-After"]) <= 200
            again = _run(server, alice, "r0", 1)  # the replay of an accepted run
            assert again.status_code == 200, again.text
        assert _run(two, bob, "r3", 1).status_code == 202
    finally:
        for server in servers:
            server.stop()
