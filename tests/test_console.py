"""The job console (aptools.jobs.console): the listing of queued, running,
waiting and stuck jobs, its acts (cancel, fail, requeue, each in the
action's log and fenced), the administrators' route, and ``aptools jobs``
reading the store from another process. On both faces and on memory,
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aptools import Action, Caller, ConsentRequired, Job, JobLost, Provider, Store
from aptools.jobs import console
from aptools.testing import FakeGlobusAuth, FakeIdentity
from aptools.testing.waiting import wait_for
from tests.conftest import Client
from tests.test_jobs import (  # noqa: F401 - fixtures
    Build,
    build,
    new_store,
    status,
    store_kind,
)

from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures
from .servers import ROOT, aptools_cli

HANG, CONSENT = 0, 1


class Hold:
    """Jobs that hang until released, ignoring any request to stop (a
    function that does not return), and a job that needs consent."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: dict[str, Job] = {}
        self.lost: list[str] = []

    def work(self, action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        if action.body.get("n") == CONSENT:
            raise ConsentRequired(required_scopes=["urn:globus:auth:scope:x:all"])
        self.started[action.action_id] = job
        self.release.wait(60)
        try:
            job.progress(display_status="still here")
        except JobLost:
            self.lost.append(action.action_id)
            raise
        return {"done": True}


_requests = iter(range(1_000_000))


def _run(client: Client, who: FakeIdentity, n: int) -> str:
    answer = client.run(who, {"n": n}, request_id=f"r{next(_requests)}")
    assert answer.status_code == 202, answer.text
    action_id: str = answer.json["action_id"]
    return action_id


def _views(provider: Provider, **kw: Any) -> dict[str, console.JobView]:
    spec = provider.compile()
    assert spec.jobs is not None
    found = console.list_jobs(spec.store, spec.jobs.queue, **kw)
    return {v.action_id: v for v in found}


def _four_states(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    bob: FakeIdentity,
    **kw: Any,
) -> tuple[Provider, Client, Hold, dict[str, str]]:
    """A provider with one job in each state: waiting, running, stuck, queued."""
    hold = Hold()
    # A canceled job that never returns frees its max_jobs slot, but its row
    # stays held: with one job per caller, bob's queued job waits behind it.
    provider, client = build(
        hold.work,
        max_jobs=2,
        max_jobs_per_caller=1,
        lease=2.0,
        administered_by=[alice.urn],
        **kw,
    )
    ids = {"waiting": _run(client, bob, CONSENT)}
    wait_for(
        lambda: status(client, bob, ids["waiting"])["status"] == "INACTIVE",
        "the consent job waits",
    )
    ids["running"] = _run(client, alice, HANG)
    ids["stuck"] = _run(client, bob, HANG)
    wait_for(lambda: len(hold.started) == 2, "two jobs run")
    ids["queued"] = _run(client, bob, HANG)
    # Canceled, but its function does not return: the row stays held.
    assert (
        client.call("POST", f"/{ids['stuck']}/cancel", bob).json["status"] == "FAILED"
    )
    return provider, client, hold, ids


def test_the_listing_has_each_state_with_its_holder_lease_and_attempts(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    bob: FakeIdentity,
) -> None:
    provider, _client, hold, ids = _four_states(build, alice, bob)
    try:
        views = wait_for(
            lambda: v if len(v := _views(provider)) == 4 else None,
            "four jobs listed",
        )
        assert {k: views[a].state for k, a in ids.items()} == {k: k for k in ids}
        running = views[ids["running"]]
        assert running.caller == alice.id and running.username == alice.username
        assert running.held_by is not None
        assert running.held_by["pid"] == os.getpid()
        assert running.lease_expires is not None and running.lease_left is not None
        assert 0 < running.lease_left <= 2.0
        assert running.attempts == 1 and running.takeovers == 0
        assert running.deadline is not None
        for idle in ("queued", "waiting"):
            assert views[ids[idle]].held_by is None
            assert views[ids[idle]].lease_expires is None
        assert views[ids["stuck"]].status == "FAILED"
        assert views[ids["stuck"]].held_by is not None
        # Filters: by state, by caller (identity id or username).
        assert set(_views(provider, states=["queued", "waiting"])) == {
            ids["queued"],
            ids["waiting"],
        }
        assert set(_views(provider, caller=alice.id)) == {ids["running"]}
        urn = "urn:globus:auth:identity:" + alice.id
        assert set(_views(provider, caller=urn)) == {ids["running"]}
        assert set(_views(provider, caller=bob.username)) == {
            ids["waiting"],
            ids["stuck"],
            ids["queued"],
        }
    finally:
        hold.release.set()


def test_the_administrators_route_lists_jobs_and_anyone_else_gets_404(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    bob: FakeIdentity,
) -> None:
    _provider, client, hold, ids = _four_states(build, alice, bob)
    try:
        listed = wait_for(
            lambda: (
                (r := client.call("GET", "/jobs", alice)).status_code == 200
                and len(r.json) == 4
                and r.json
            ),
            "four jobs listed over HTTP",
        )
        by_id = {j["action_id"]: j for j in listed}
        assert {k: by_id[a]["state"] for k, a in ids.items()} == {k: k for k in ids}
        running = by_id[ids["running"]]
        assert running["held_by"]["pid"] == os.getpid()
        assert running["lease_expires"].endswith(("Z", "+00:00"))
        assert by_id[ids["queued"]]["held_by"] is None
        assert by_id[ids["queued"]]["lease_expires"] is None
        one = client.call("GET", "/jobs?state=Running,stuck&caller=" + bob.id, alice)
        assert [j["action_id"] for j in one.json] == [ids["stuck"]]
        # The URN form, as action documents show the creator, is the same.
        urn = "urn:globus:auth:identity:" + bob.id
        same = client.call("GET", "/jobs?state=Running,stuck&caller=" + urn, alice)
        assert [j["action_id"] for j in same.json] == [ids["stuck"]]
        odd = client.call("GET", "/jobs?caller=%C3%A9", alice)
        assert odd.status_code == 400
        assert "username" in odd.json["description"]
        assert "page" not in odd.json["description"]
        assert client.call("GET", "/jobs?state=lost", alice).status_code == 400
        denied = client.call("GET", "/jobs", bob)
        assert denied.status_code == 404
        assert ids["running"] not in denied.text
        assert client.call("GET", "/jobs").status_code == 401
    finally:
        hold.release.set()


def test_requeue_fences_out_the_holder_and_is_in_the_actions_log(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    bob: FakeIdentity,
) -> None:
    hold = Hold()
    provider, client = build(hold.work, lease=30.0)
    spec = provider.compile()
    assert spec.jobs is not None
    store, queue = spec.store, spec.jobs.queue
    action_id = _run(client, alice, HANG)
    wait_for(lambda: action_id in hold.started, "the job runs")
    assert (
        console.requeue_job(store, queue, action_id, "operator ops@test") == "running"
    )
    # Claimed again (by this process's runner, a new claim), the old holder
    # is refused at its next write.
    wait_for(lambda: _views(provider)[action_id].attempts == 1, "claimed anew")
    hold.release.set()
    wait_for(lambda: hold.lost == [action_id], "the old holder lost the job")
    log = client.call("GET", f"/{action_id}/log?limit=100", alice).json["entries"]
    assert [e["code"] for e in log] == ["RequeuedByOperator"]
    assert "operator ops@test" in log[0]["description"]
    with pytest.raises(console.ConsoleError):
        console.requeue_job(store, queue, "no-such-job", "operator")


def test_cancel_and_fail_end_the_action_and_are_in_its_log(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
) -> None:
    hold = Hold()
    provider, client = build(hold.work, max_jobs=4, lease=1.5)
    spec = provider.compile()
    assert spec.jobs is not None
    store, queue = spec.store, spec.jobs.queue
    first, second = _run(client, alice, HANG), _run(client, alice, HANG)
    wait_for(lambda: len(hold.started) == 2, "both jobs run")
    console.cancel_job(store, queue, first, "operator ops@test")
    console.fail_job(store, queue, second, "disk full on /scratch", "operator ops@test")
    canceled, failed = status(client, alice, first), status(client, alice, second)
    assert canceled["status"] == failed["status"] == "FAILED"
    assert canceled["display_status"] == "Canceled"
    assert failed["details"] == {
        "code": "FailedByOperator",
        "description": "disk full on /scratch",
    }
    for action_id, code in (
        (first, "CanceledByOperator"),
        (second, "FailedByOperator"),
    ):
        log = client.call("GET", f"/{action_id}/log", alice).json["entries"]
        assert [e["code"] for e in log] == [code]
    # Their holders are told to stop.
    wait_for(lambda: all(j.canceled for j in hold.started.values()), "jobs told")
    with pytest.raises(console.ConsoleError, match="ended"):
        console.cancel_job(store, queue, first, "operator")
    with pytest.raises(console.ConsoleError, match="printable"):
        console.fail_job(store, queue, second, "bad\nline", "operator")
    hold.release.set()


# -- aptools jobs, another process reading the store ---------------------------

_MODULE = """
import os
from aptools import Provider

provider = Provider(
    title="Jobs",
    scope=os.environ["CONSOLE_SCOPE"],
    admin_contact="admin@example.org",
    input_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
    prefix="/jobs",
    store=os.environ["CONSOLE_STORE"],
)


@provider.job(resumable=True)
def work(action, caller, job):
    return {}
"""


@pytest.fixture
def durable(store_kind: str) -> str:  # noqa: F811 - the fixture imported above
    if store_kind == "memory":
        pytest.skip("another process cannot read a memory store")
    return store_kind


@pytest.fixture
def cli(
    durable: str, tmp_path: Path, auth: FakeGlobusAuth, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    (tmp_path / "console_app.py").write_text(_MODULE)
    url = (
        request.getfixturevalue("pg_url")
        if durable == "postgresql"
        else f"sqlite:///{tmp_path / 'a.db'}"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{tmp_path}:{ROOT}",
        "CONSOLE_SCOPE": auth.scope,
        "CONSOLE_STORE": url,
    }

    def call(*args: str) -> Any:
        return aptools_cli("jobs", "console_app", *args, cwd=tmp_path, env=env)

    yield call


def test_aptools_jobs_lists_shows_and_acts_from_another_process(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    bob: FakeIdentity,
    cli: Callable[..., Any],
) -> None:
    _provider, client, hold, ids = _four_states(build, alice, bob, resumable=True)
    try:
        listed = wait_for(
            lambda: (
                (out := cli("--json")).returncode == 0
                and len(doc := json.loads(out.stdout)) == 4
                and doc
            ),
            "four jobs listed by aptools jobs",
        )
        by_id = {j["action_id"]: j for j in listed}
        assert {k: by_id[a]["state"] for k, a in ids.items()} == {k: k for k in ids}
        assert by_id[ids["running"]]["held_by"]["pid"] == os.getpid()
        text = cli("--state", "running", "--caller", alice.username)
        assert text.returncode == 0, text.stderr
        lines = text.stdout.splitlines()
        assert lines[0].split()[:3] == ["ACTION", "STATE", "CALLER"]
        assert len(lines) == 2 and ids["running"] in lines[1]
        assert f":{os.getpid()}" in lines[1]
        shown = cli("show", ids["waiting"])
        assert json.loads(shown.stdout)["state"] == "waiting"
        refused = cli("requeue", ids["queued"])
        assert refused.returncode == 1 and "queued" in refused.stderr
        done = cli("fail", ids["queued"], "--message", "not today")
        assert done.returncode == 0, done.stderr
        failed = status(client, bob, ids["queued"])
        assert failed["details"]["description"] == "not today"
        log = client.call("GET", f"/{ids['queued']}/log", bob).json["entries"]
        assert "aptools jobs" in log[-1]["description"]
        assert cli("requeue", ids["stuck"]).returncode == 0
        assert cli("cancel", ids["running"]).returncode == 0
        assert status(client, alice, ids["running"])["display_status"] == "Canceled"
        missing = cli("show", "no-such-job")
        assert missing.returncode == 1 and "no job" in missing.stderr
    finally:
        hold.release.set()


def test_two_processes_on_one_database_are_listed_with_their_own_holders(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
) -> None:
    hold = Hold()
    first, one = build(hold.work, max_jobs=1, lease=2.0, administered_by=[alice.urn])
    second, two = build(hold.work, max_jobs=1, lease=2.0, administered_by=[alice.urn])
    try:
        ids = [_run(one, alice, HANG), _run(two, alice, HANG)]
        wait_for(lambda: len(hold.started) == 2, "each process runs one")
        for provider, client in ((first, one), (second, two)):
            views = _views(provider)
            assert {views[a].state for a in ids} == {"running"}
            owners = {views[a].held_by["owner"] for a in ids}  # type: ignore[index]
            assert len(owners) == 2
            listed = client.call("GET", "/jobs?state=running", alice).json
            assert {j["held_by"]["owner"] for j in listed} == owners
    finally:
        hold.release.set()


def test_a_job_taken_over_near_the_limit_is_stuck(
    new_store: Callable[[], Store],  # noqa: F811 - the fixture imported above
) -> None:
    from aptools.testing.queue_contract import LONG, SHORT, JobQueueContract

    store = new_store().for_provider("near")
    queue = store.jobs()
    assert queue is not None
    queue.enqueue("j", None, {"identity_id": "a", "identities": ["a"]})
    JobQueueContract.put(store, "j")
    for k in range(console.NEAR_LIMIT):
        # Each holder dies (its short lease runs out); the last one lives.
        lease = LONG if k == console.NEAR_LIMIT - 1 else SHORT
        wait_for(lambda: queue.claim(f"p{k}", lease, 1), "a lease ran out")  # noqa: B023
    (view,) = console.list_jobs(store, queue, resumable=True)
    assert (view.state, view.attempts, view.takeovers) == ("stuck", 8, 7)
    (plain,) = console.list_jobs(store, queue, resumable=False)
    assert plain.state == "running"


def test_aptools_jobs_refuses_a_memory_store_and_needs_no_secrets(
    tmp_path: Path, auth: FakeGlobusAuth
) -> None:
    (tmp_path / "console_app.py").write_text(_MODULE)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{tmp_path}:{ROOT}",
        "CONSOLE_SCOPE": auth.scope,
    }
    memory = aptools_cli(
        "jobs", "console_app", cwd=tmp_path, env={**env, "CONSOLE_STORE": "memory:"}
    )
    assert memory.returncode == 1 and "memory:" in memory.stderr
    url = f"sqlite:///{tmp_path / 'a.db'}"
    empty = aptools_cli(
        "jobs", "console_app", "--json", cwd=tmp_path, env={**env, "CONSOLE_STORE": url}
    )
    assert (empty.returncode, json.loads(empty.stdout)) == (0, []), empty.stderr
