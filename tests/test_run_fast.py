"""The common run's short ways hold to the rule of the long ones: the WSGI
face's plain run function, the run document's body-only check, the action
id rule without a regular expression, and action ids cut from a pool."""

from __future__ import annotations

import inspect
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from aptools import ActionRequest, Caller, MemoryStore, SQLiteStore, Store
from aptools.actions import new_action_id
from aptools.errors import NotFound
from aptools.protocol.query import ACTION_ID_MOST, action_id
from aptools.testing import FakeIdentity

from .conftest import MakeClient

DEFAULTS = {
    "type": "object",
    "properties": {
        "input_string": {"type": "string", "maxLength": 8},
        "times": {"type": "integer", "default": 3},
    },
    "required": ["input_string"],
    "additionalProperties": False,
}


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "actions.db")


@pytest.mark.parametrize(
    "request_id, body, status",
    [
        ("r", {"input_string": "hi"}, 202),
        ("x" * 1024, {"input_string": "hi"}, 202),
        ("", {"input_string": "hi"}, 400),
        ("x" * 1025, {"input_string": "hi"}, 400),
        ("a\x00b", {"input_string": "hi"}, 400),
        (5, {"input_string": "hi"}, 400),
        (None, {"input_string": "hi"}, 400),
        ("r", {"input_string": 5}, 400),
        ("r", {"input_string": "far too long"}, 400),
        ("r", {}, 400),
        ("r", {"input_string": "hi", "extra": 1}, 400),
        ("r", ["input_string"], 400),
        ("r", "hi", 400),
        ("r", None, 400),
    ],
)
def test_a_request_id_and_body_alone_are_judged_as_the_whole_schema_judges(
    make: MakeClient,
    alice: FakeIdentity,
    request_id: Any,
    body: Any,
    status: int,
) -> None:
    # With a third member (a valid label) the document takes the whole
    # schema's check; without it, the body's own: same answer, same words.
    answers = []
    for extra in ({}, {"label": "a label"}):
        _, client = make(input_schema=DEFAULTS, store=MemoryStore())
        document = {"request_id": request_id, "body": body, **extra}
        result = client.call("POST", "/run", alice, json=document)
        answers.append((result.status_code, result.json.get("description")))
    assert answers[0] == answers[1]
    assert answers[0][0] == status


def test_a_body_checked_alone_gets_its_schema_defaults(
    make: MakeClient, alice: FakeIdentity, store: Store
) -> None:
    seen: list[dict[str, Any]] = []

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        seen.append(dict(request.body))
        return {}

    _, client = make(input_schema=DEFAULTS, run=run, store=store)
    assert client.run(alice, {"input_string": "hi"}, "a").status_code == 202
    assert client.run(alice, {"input_string": "hi"}, "b", label="l").status_code == 202
    assert seen == [{"input_string": "hi", "times": 3}] * 2


def _driven() -> bool:
    return any(frame.function == "drive" for frame in inspect.stack())


def test_wsgi_runs_the_common_run_without_the_driver(
    make: MakeClient, alice: FakeIdentity, flavour: str, store: Store
) -> None:
    # Both ways answer the conformance tests; this one says which way runs.
    driven: list[bool] = []

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        driven.append(_driven())
        return {"you_said": request.body["input_string"]}

    _, client = make(run=run, store=store)
    # The token's first request introspects it: the operation's way.
    assert client.run(alice, {"input_string": "hi"}, "warm").status_code == 202
    first = client.run(alice, {"input_string": "hi"})
    assert first.status_code == 202
    again = client.run(alice, {"input_string": "hi"})
    assert again.status_code == 200 and again.json == first.json
    assert client.run(alice, {"input_string": "ho"}).status_code == 409
    # Only one provider-level caller list: the operation itself runs.
    _, listed = make(run=run, store=MemoryStore(), runnable_by=[alice.urn])
    assert listed.run(alice, {"input_string": "hi"}, "warm").status_code == 202
    assert listed.run(alice, {"input_string": "hi"}).status_code == 202
    if flavour == "wsgi":
        assert driven == [True, False, True, True]
    else:  # a def handler runs in a worker thread, away from the driver
        assert driven == [False] * 4


def test_a_run_handler_failing_on_the_short_way_frees_its_request_key(
    make: MakeClient, alice: FakeIdentity, store: Store
) -> None:
    calls: list[str] = []

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        calls.append(request.action_id)
        if len(calls) == 1:
            raise RuntimeError("the first try breaks")
        return {"n": len(calls)}

    _, client = make(run=run, store=store)
    assert client.run(alice, {"input_string": "hi"}).status_code == 500
    retried = client.run(alice, {"input_string": "hi"})
    assert retried.status_code == 202
    assert retried.json["details"] == {"n": 2}
    assert len(set(calls)) == 2


def test_the_action_id_rule_is_visible_ascii_of_1_to_128_characters() -> None:
    rule = re.compile(rf"[\x21-\x7e]{{1,{ACTION_ID_MOST}}}")
    values = [chr(n) for n in range(0x3000)]
    values += ["ok" + v for v in values]
    values += ["a" * 128, "a" * 129, "", "a b", "a\n", "a\u00a0b", "é" * 4]
    for value in values:
        try:
            action_id(value)
        except NotFound:
            allowed = False
        else:
            allowed = True
        assert allowed == (rule.fullmatch(value) is not None), repr(value)


def test_action_ids_are_distinct_version_4_uuids_across_pool_refills() -> None:
    ids = [new_action_id() for _ in range(1000)]  # the pool holds 256
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
