"""Query values: one strict rule for every parameter (WSGI and ASGI).

ASCII digits for numbers, any letter case for words, blank means the default,
anything else a 400 that names the parameter and does not quote the value.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest

from aptools import Action, ActionStatus, Caller, EnumerateQuery, LogPage, LogQuery
from aptools.testing import FakeIdentity

from .conftest import Client, MakeClient

GOOD = {"input_string": "hello"}


def _log_client(
    make: MakeClient, alice: FakeIdentity
) -> tuple[Client, str, list[LogQuery]]:
    queries: list[LogQuery] = []

    def log(action: Action, caller: Caller, query: LogQuery) -> LogPage:
        queries.append(query)
        return LogPage(entries=[])

    _, client = make(log=log)
    action_id = client.run(alice, GOOD).json["action_id"]
    return client, action_id, queries


@pytest.mark.parametrize(
    "query, limit, reverse",
    [
        ("limit=5", 5, False),
        ("limit=0005", 5, False),
        ("limit=1000", 1000, False),
        ("limit=", 10, False),  # blank: the default
        ("limit=%20", 10, False),
        ("", 10, False),
        ("reverse_order=true", 10, True),
        ("reverse_order=TRUE", 10, True),
        ("reverse_order=False", 10, False),
        ("reverse_order=", 10, False),
        ("limit=7&reverse_order=tRuE", 7, True),
    ],
)
def test_log_query_values(
    make: MakeClient, alice: FakeIdentity, query: str, limit: int, reverse: bool
) -> None:
    client, action_id, queries = _log_client(make, alice)
    page = client.call("GET", f"/actions/{action_id}/log", alice, query_string=query)
    assert page.status_code == 200, page.text
    assert queries == [LogQuery(limit=limit, marker=None, reverse_order=reverse)]
    assert page.json["limit"] == limit


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("limit=%C2%B2", "limit"),  # superscript two: isdigit() is true for it
        ("limit=%D9%A1%D9%A0", "limit"),  # Arabic-Indic ten
        ("limit=%EF%BC%95", "limit"),  # fullwidth five
        ("limit=%F0%9D%9F%93", "limit"),  # mathematical bold five
        ("limit=-1", "limit"),
        ("limit=%2B5", "limit"),
        ("limit=5.0", "limit"),
        ("limit=%205", "limit"),  # digits only, no spaces
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=" + "9" * 5000, "limit"),  # no giant integer conversion
        ("limit=lots", "limit"),
        ("reverse_order=yes-please", "reverse_order"),
        ("reverse_order=2", "reverse_order"),
    ],
)
def test_bad_log_query_values_are_400_naming_the_parameter(
    make: MakeClient, alice: FakeIdentity, query: str, parameter: str
) -> None:
    client, action_id, queries = _log_client(make, alice)
    page = client.call("GET", f"/actions/{action_id}/log", alice, query_string=query)
    assert page.status_code == 400
    assert page.json["code"] == "BadRequest"
    assert repr(parameter) in page.json["description"]
    value = unquote(query.split("=", 1)[1])
    if len(value) > 4:  # shorter ones may be part of the rule's text
        assert value not in page.json["description"]
    assert not queries


@pytest.fixture
def listed(
    make: MakeClient, alice: FakeIdentity
) -> tuple[Client, dict[str, str], list[EnumerateQuery]]:
    queries: list[EnumerateQuery] = []

    def enumerate_actions(query: EnumerateQuery, caller: Caller) -> list[Action]:
        queries.append(query)
        return query.actions

    def run(request: Any, caller: Caller) -> Any:
        if request.body["input_string"] == "done":
            return {"ok": True}
        return ActionStatus.active()

    _, client = make(run=run, enumerate=enumerate_actions)
    ids = {
        "ACTIVE": client.run(alice, GOOD, request_id="a").json["action_id"],
        "SUCCEEDED": client.run(alice, {"input_string": "done"}, request_id="b").json[
            "action_id"
        ],
    }
    return client, ids, queries


@pytest.mark.parametrize(
    "query, statuses",
    [
        ("status=succeeded", {"SUCCEEDED"}),
        ("status=SUCCEEDED", {"SUCCEEDED"}),
        ("status=Succeeded", {"SUCCEEDED"}),
        ("status=active,Succeeded", {"ACTIVE", "SUCCEEDED"}),
        ("status=active&status=sUcCeEdEd", {"ACTIVE", "SUCCEEDED"}),
        ("status=Active,%20succeeded", {"ACTIVE", "SUCCEEDED"}),
        ("status=", {"ACTIVE"}),  # blank: the default
        ("status=,", {"ACTIVE"}),
        ("", {"ACTIVE"}),
        ("roles=CREATOR_ID", {"ACTIVE"}),
        ("roles=", {"ACTIVE"}),
    ],
)
def test_enumerate_words_in_any_case(
    listed: tuple[Client, dict[str, str], list[EnumerateQuery]],
    alice: FakeIdentity,
    query: str,
    statuses: set[str],
) -> None:
    client, ids, queries = listed
    result = client.call("GET", "/actions", alice, query_string=query)
    assert result.status_code == 200, result.text
    assert {a["action_id"] for a in result.json} == {ids[s] for s in statuses}
    assert queries[-1].statuses == statuses
    assert queries[-1].roles == {"creator_id"}


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("status=bogus", "status"),
        ("status=active,bogus", "status"),
        ("status=%C3%A4ctive", "status"),
        ("roles=owner", "roles"),
        ("roles=creator_id,owner", "roles"),
    ],
)
def test_bad_enumerate_words_are_400_naming_the_parameter(
    listed: tuple[Client, dict[str, str], list[EnumerateQuery]],
    alice: FakeIdentity,
    query: str,
    parameter: str,
) -> None:
    client, _, _ = listed
    result = client.call("GET", "/actions", alice, query_string=query)
    assert result.status_code == 400
    assert repr(parameter) in result.json["description"]
