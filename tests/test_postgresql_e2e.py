"""End to end on PostgreSQL: two hosts (gunicorn with 2 workers, and uvicorn)
serving one provider from one database, over HTTP, through globus-sdk and the
fake Globus Auth."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from aptools.testing import FakeGlobusAuth, FakeIdentity

from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    Relay,
    eventually,
    pg_url_fixture,
    schema_fixture,
    through,
)
from .servers import Server

pytestmark = pytest.mark.e2e
pytest.importorskip("psycopg")


def hosts(auth: FakeGlobusAuth, url: str) -> tuple[Server, Server]:
    return (
        Server("gunicorn", "examples.countdown.app", "/countdown", auth, url),
        Server("uvicorn", "examples.countdown.app", "/countdown", auth, url),
    )


@pytest.fixture
def pair(auth: FakeGlobusAuth, pg_url: str) -> Iterator[tuple[Server, Server]]:
    one, two = hosts(auth, pg_url)
    with one, two:
        yield one, two


def run(host: Server, token: str, request_id: str, seconds: float) -> requests.Response:
    return host.call(
        "POST",
        "/run",
        token,
        json={"request_id": request_id, "body": {"seconds": seconds}},
    )


def test_run_on_one_host_manage_on_the_other(
    pair: tuple[Server, Server], alice: FakeIdentity, bob: FakeIdentity
) -> None:
    one, two = pair
    started = run(one, alice.token, "c1", 30)
    assert started.status_code == 202, started.text
    action_id = started.json()["action_id"]
    seen = two.call("GET", f"/{action_id}/status", alice.token)
    assert seen.status_code == 200 and seen.json()["status"] == "ACTIVE"
    assert two.call("GET", f"/{action_id}/status", bob.token).status_code == 404
    again = run(two, alice.token, "c1", 30)
    assert again.status_code == 200 and again.json()["action_id"] == action_id
    listed = two.call("GET", "/actions", alice.token, params={"status": "active"})
    assert [a["action_id"] for a in listed.json()] == [action_id]
    canceled = two.call("POST", f"/{action_id}/cancel", alice.token)
    assert canceled.status_code == 200 and canceled.json()["status"] == "FAILED"
    assert (
        one.call("GET", f"/{action_id}/status", alice.token).json()["status"]
        == "FAILED"
    )
    assert one.call("POST", f"/{action_id}/release", alice.token).status_code == 200
    assert two.call("GET", f"/{action_id}/status", alice.token).status_code == 404


def test_identical_runs_split_across_hosts_make_one_action(
    pair: tuple[Server, Server], auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    token = auth.token(alice)  # new to both hosts: a cold authentication too
    with ThreadPoolExecutor(50) as pool:
        results = list(
            pool.map(lambda n: run(pair[n % 2], token, "burst", 0), range(50))
        )
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 49 + [202], codes
    assert len({r.json()["action_id"] for r in results}) == 1


def test_a_new_token_is_introspected_once_across_hosts(
    pair: tuple[Server, Server], auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    # Three processes on two hosts get a token none has seen, while Globus
    # Auth is slow to answer: one introspection reaches it.
    token = auth.token(alice)
    before = auth.calls["introspect"]
    auth.latency = 0.5
    try:
        with ThreadPoolExecutor(50) as pool:
            results = list(
                pool.map(lambda n: run(pair[n % 2], token, f"t{n}", 0), range(50))
            )
    finally:
        auth.latency = 0.0
    assert [r.status_code for r in results] == [202] * 50
    assert auth.calls["introspect"] == before + 1


def _kill_host(server: Server) -> None:
    """kill -9 the server and its workers, as a host that dies."""
    assert server.proc is not None
    master = server.proc.pid
    workers = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _parent(entry) == master
    ]
    for pid in [master, *workers]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.proc.wait()


def _parent(entry: Path) -> int | None:
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def test_a_host_killed_during_load_loses_no_accepted_action(
    pair: tuple[Server, Server], alice: FakeIdentity
) -> None:
    one, two = pair

    def attempt(n: int) -> requests.Response | None:
        try:
            return run(pair[n % 2], alice.token, f"load-{n}", 0)
        except (requests.ConnectionError, RuntimeError):
            return None  # the killed host: not accepted

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(attempt, n) for n in range(120)]
        futures[40].result()
        _kill_host(one)  # while requests are still arriving on both
        results = [future.result() for future in futures]
    assert results[40] is not None and results[40].status_code == 202
    # The survivor answered every request sent to it.
    assert all(r is not None and r.status_code == 202 for r in results[1::2])
    accepted = [
        r.json()["action_id"] for r in results if r is not None and r.status_code == 202
    ]
    for action_id in accepted:
        got = two.call("GET", f"/{action_id}/status", alice.token)
        assert got.status_code == 200, got.text


def test_database_outage_answers_503_and_recovers(
    auth: FakeGlobusAuth, alice: FakeIdentity, schema: str
) -> None:
    relay = Relay()
    url = through(relay, schema, pool_timeout=1, connect_timeout=1, statement_timeout=2)
    one, two = hosts(auth, url)
    try:
        with one, two:
            accepted = [
                run(pair, alice.token, f"o{n}", 0)
                for n, pair in enumerate((one, two, one, two))
            ]
            assert [r.status_code for r in accepted] == [202] * 4
            relay.cut()
            for host in (one, two):
                down = run(host, alice.token, "during", 0)
                assert down.status_code == 503, down.text
                assert down.json()["code"] == "StoreUnavailable"
                assert down.headers["Retry-After"]
            relay.mend()
            for result in accepted:
                action_id = result.json()["action_id"]
                for host in (one, two):
                    back = eventually(
                        lambda h=host, a=action_id: h.call(
                            "GET", f"/{a}/status", alice.token
                        ),
                        lambda r: r.status_code != 503,
                    )
                    assert back.status_code == 200, back.text
            # A new run is accepted once the pool has its connections back
            # (until then 503 with Retry-After, which a client honours; the
            # same request_id each time, so it is run once).
            after = eventually(
                lambda: run(one, alice.token, "after", 0),
                lambda r: r.status_code != 503,
            )
            assert after.status_code == 202, after.text
    finally:
        relay.cut()
