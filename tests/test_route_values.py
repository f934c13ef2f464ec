"""Every value a route hands on is read by one rule (WSGI and ASGI).

The cases are generated from the route table: every declared query parameter
of every served route (HEAD included) meets the same bad values, and every
route with an action id in its path meets the same bad ids. A new route or
parameter is covered without a new test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aptools import (
    Action,
    ActionStatus,
    Caller,
    EnumerateQuery,
    Job,
    LogPage,
    LogQuery,
    MemoryStore,
    Provider,
    SQLiteStore,
)
from aptools.protocol.query import TOKEN_MOST
from aptools.protocol.routes import Route, route_table
from aptools.store import Store
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import Client, MakeClient
from .pg import eventually, pg_url_fixture, schema_fixture  # noqa: F401 - fixtures

HANDLERS = ("run", "status", "cancel", "release", "log", "enumerate", "resume")
SERVED = route_table(HANDLERS)

#: Values no parameter takes, whatever its kind.
BAD = {
    "superscript-two": "²",
    "arabic-indic-ten": "\u0661\u0660",
    "fullwidth-five": "\uff15",
    "nul": "\x00",
    "nul-inside": "5\x00",
    "escape": "\x1b[31m",
    "5000-digits": "9" * 5000,
    "5000-letters": "a" * 5000,
    "non-ascii-letter": "é",
    "newline": "true\nfalse",
}

QUERY_CASES = [
    pytest.param(route, p.name, id=f"{route.method} {route.path} {p.name}")
    for route in SERVED
    for p in route.parameters
]
SINGLE_CASES = [
    pytest.param(route, p.name, id=f"{route.method} {route.path} {p.name}")
    for route in SERVED
    for p in route.parameters
    if not p.many
]
GOOD_ONCE = {
    "limit": "5",
    "marker": "1",
    "pagination_token": "1",
    "reverse_order": "true",
    "caller": "alice@example.org",
}
PATH_CASES = [
    pytest.param(route, id=f"{route.method} {route.path}")
    for route in SERVED
    if "{action_id}" in route.path
]
BAD_IDS = {
    "nul": "abc\x00def",
    "5000-characters": "a" * 5000,
    "non-ascii": "é" * 4,
    "space": "a b",
    "escape": "\x1b[31m",
}


def test_the_cases_cover_the_routes_that_take_values() -> None:
    named = {(r.method, r.path, p.name) for r in SERVED for p in r.parameters}
    for method in ("GET", "HEAD"):
        assert (method, "/actions/{action_id}/log", "marker") in named
        assert (method, "/{action_id}/log", "pagination_token") in named
        assert (method, "/actions", "status") in named
        assert (method, "/actions", "roles") in named
        assert (method, "/jobs", "state") in named
        assert (method, "/jobs", "caller") in named
    assert len(PATH_CASES) >= 10


def _everything(make: MakeClient, **kw: Any) -> tuple[Provider, Client, list[str]]:
    """A provider serving every route, whose handlers note each call."""
    calls: list[str] = []

    def run(request: Any, caller: Caller) -> ActionStatus:
        return ActionStatus.active()

    def noted(name: str, answer: Any) -> Any:
        def handler(*args: Any) -> Any:
            calls.append(name)
            return answer

        return handler

    provider, client = make(
        run=run,
        status=noted("status", None),
        cancel=noted("cancel", ActionStatus.failed("stopped")),
        release=noted("release", None),
        log=noted("log", LogPage(entries=[])),
        enumerate=noted("enumerate", []),
        resume=noted("resume", None),
        **kw,
    )
    return provider, client, calls


@pytest.fixture
def everything(make: MakeClient, alice: FakeIdentity) -> tuple[Client, list[str], str]:
    _, client, calls = _everything(make)
    action_id = client.run(alice, {"input_string": "hi"}).json["action_id"]
    return client, calls, action_id


def _path(route: Route, action_id: str) -> str:
    return route.path.replace("{action_id}", action_id)


def _refused(reply: Any, route: Route, status: int, *words: str) -> None:
    assert reply.status_code == status, reply.text
    if route.method == "HEAD":
        return  # same status and headers as GET, no body
    assert reply.headers["content-type"].startswith("application/json")
    doc = reply.json
    assert set(doc) == {"code", "description"}
    for word in words:
        assert word in doc["description"]


@pytest.mark.parametrize("bad", list(BAD.values()), ids=list(BAD))
@pytest.mark.parametrize(("route", "name"), QUERY_CASES)
def test_a_bad_query_value_is_a_json_400_naming_it(
    everything: tuple[Client, list[str], str],
    alice: FakeIdentity,
    route: Route,
    name: str,
    bad: str,
) -> None:
    client, calls, action_id = everything
    reply = client.call(
        route.method, _path(route, action_id), alice, params={name: bad}
    )
    _refused(reply, route, 400, repr(name))
    if route.method != "HEAD" and len(bad) > 4:
        assert bad not in reply.json["description"]
    assert calls == []  # no handler saw it


@pytest.mark.parametrize(("route", "name"), SINGLE_CASES)
def test_a_single_value_given_twice_is_a_json_400(
    everything: tuple[Client, list[str], str],
    alice: FakeIdentity,
    route: Route,
    name: str,
) -> None:
    client, calls, action_id = everything
    value = GOOD_ONCE[name]
    reply = client.call(
        route.method,
        _path(route, action_id),
        alice,
        query_string=f"{name}={value}&{name}={value}",
    )
    _refused(reply, route, 400, repr(name), "only once")
    assert calls == []


@pytest.mark.parametrize(
    "marker", ["0", "abc", "~!*.-_", "Zm9vYmFy+/=", "9" * TOKEN_MOST]
)
@pytest.mark.parametrize("name", ["marker", "pagination_token"])
def test_a_marker_by_the_rule_reaches_the_log_handler_as_sent(
    make: MakeClient, alice: FakeIdentity, name: str, marker: str
) -> None:
    queries: list[LogQuery] = []

    def log(action: Action, caller: Caller, query: LogQuery) -> LogPage:
        queries.append(query)
        return LogPage(entries=[])

    _, client = make(log=log)
    action_id = client.run(alice, {"input_string": "hi"}).json["action_id"]
    reply = client.call(
        "GET", f"/actions/{action_id}/log", alice, params={name: marker}
    )
    assert reply.status_code == 200, reply.text
    assert queries == [LogQuery(limit=10, marker=marker, reverse_order=False)]


@pytest.mark.parametrize("marker", ["²", "a b", "x" * (TOKEN_MOST + 1), 7])
def test_a_log_handler_s_marker_follows_the_same_rule(
    make: MakeClient, alice: FakeIdentity, marker: Any
) -> None:
    """A marker a request could not send back is a bug in the provider."""
    _, client = make(log=lambda a, c, q: LogPage(entries=[], marker=marker))
    action_id = client.run(alice, {"input_string": "hi"}).json["action_id"]
    reply = client.call("GET", f"/actions/{action_id}/log", alice)
    assert reply.status_code == 500
    assert reply.json["code"] == "InternalError"


def test_the_job_log_takes_any_marker_by_the_rule(
    auth: FakeGlobusAuth, flavour: str, alice: FakeIdentity
) -> None:
    """The log of a provider with a job pages by number; a marker it did not
    give (a word, 512 digits) starts at the top or past the end, never 500."""
    provider = Provider(
        title="Jobs",
        scope=auth.scope,
        admin_contact="admin@example.org",
        input_schema={"type": "object"},
        prefix="/jobs",
        store=MemoryStore(),
        job_poll_interval=0.05,
    )

    @provider.job()
    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        for n in range(3):
            job.progress(log={"code": "STEP", "description": f"step {n}"})
        return {"done": True}

    app = provider.wsgi() if flavour == "wsgi" else provider.asgi()
    client = Client(app, provider.prefix)
    try:
        action_id = client.run(alice, {}).json["action_id"]
        done = eventually(
            lambda: client.call("GET", f"/actions/{action_id}", alice),
            lambda r: r.json["status"] in ("SUCCEEDED", "FAILED"),
        )
        assert done.json["status"] == "SUCCEEDED", done.text
        path = f"/actions/{action_id}/log"
        first = client.call("GET", path, alice, params={"limit": "2"})
        assert first.status_code == 200, first.text
        assert first.json["has_next_page"] is True
        nxt = client.call(
            "GET", path, alice, params={"limit": "2", "marker": first.json["marker"]}
        )
        assert [e["description"] for e in nxt.json["entries"]][-1] == "step 2"
        for marker, entries in (("abc", 2), ("9" * TOKEN_MOST, 0)):
            page = client.call(
                "GET", path, alice, params={"limit": "2", "marker": marker}
            )
            assert page.status_code == 200, page.text
            assert len(page.json["entries"]) == entries
        for bad in ("²", "9" * 5000):
            page = client.call("GET", path, alice, params={"marker": bad})
            assert page.status_code == 400
            assert "'marker'" in page.json["description"]
    finally:
        provider.compile().execution.stop()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "actions.db")
    else:
        from aptools.store.postgresql import PostgreSQLStore

        made = PostgreSQLStore(request.getfixturevalue("pg_url"))
    yield made
    made.close()


@pytest.mark.parametrize("route", PATH_CASES)
def test_an_action_id_no_action_can_have_is_a_json_404_before_any_store(
    make: MakeClient, alice: FakeIdentity, store: Store, route: Route
) -> None:
    provider, client, calls = _everything(make, store=store)
    try:
        client.run(alice, {"input_string": "hi"})
        for name, bad in BAD_IDS.items():
            reply = client.call(route.method, _path(route, bad), alice)
            assert reply.status_code == 404, (name, reply.text)
            if route.method != "HEAD":
                assert reply.json["code"] == "NotFound", name
        assert calls == []
    finally:
        provider.store.close()  # the provider's view of the store, and its pool


def test_the_enumerate_handler_sees_the_words_read_by_the_rule(
    make: MakeClient, alice: FakeIdentity
) -> None:
    seen: list[EnumerateQuery] = []

    def enumerate_actions(query: EnumerateQuery, caller: Caller) -> list[Action]:
        seen.append(query)
        return list(query.actions)

    _, client = make(enumerate=enumerate_actions)
    reply = client.call(
        "GET", "/actions", alice, params={"status": " Failed ,succeeded", "roles": ""}
    )
    assert reply.status_code == 200, reply.text
    assert seen[-1].statuses == {"FAILED", "SUCCEEDED"}
    assert seen[-1].roles == {"creator_id"}
