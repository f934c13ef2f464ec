"""What ``aptools flowtest`` holds a provider's answers to."""

from __future__ import annotations

from aptools.cli.conformance import (
    check_cors,
    check_description,
    check_error,
    check_status,
    consent_scope,
)

GOOD = {
    "action_id": "a1",
    "status": "SUCCEEDED",
    "creator_id": "urn:globus:auth:identity:8f3c2d4e-1111-4c22-9a33-0123456789ab",
    "details": {},
    "start_time": "2026-12-01T10:00:00Z",
    "completion_time": "2026-12-01T10:00:01.5+00:00",
    "release_after": "P30D",
    "label": "x" * 64,
    "display_status": "Done",
}


def test_a_sound_status_passes_and_each_fault_is_named() -> None:
    assert check_status(GOOD, "status") == []
    faults = {
        "action_id": (None, "action_id is missing"),
        "status": ("DONE", "status is not one of"),
        "creator_id": ("alice", "creator_id is not a principal URN"),
        "details": ([], "details is not a JSON object"),
        "start_time": ("2026-12-01 10:00:00Z", "start_time is not an RFC 3339"),
        "completion_time": ("2026-12-01T09:00:00Z", "completion_time is before"),
        "release_after": ("30 days", "release_after is not an ISO 8601 duration"),
        "label": ("", "label is 0 characters long (1..64)"),
        "display_status": ("y" * 65, "display_status is 65 characters long"),
        "monitor_by": (["bob"], "monitor_by holds 1 value(s) that are not"),
    }
    for name, (value, said) in faults.items():
        doc = {**GOOD, name: value}
        if value is None:
            del doc[name]
        found = check_status(doc, "status")
        assert len(found) == 1 and found[0].startswith(f"status: {said}"), found


def test_descriptions_errors_cors_and_consent() -> None:
    about = {
        "types": ["Action"],
        "api_version": "1.0",
        "globus_auth_scope": "https://auth.globus.org/scopes/x/action_all",
        "title": "T",
        "admin_contact": "a@example.org",
        "synchronous": True,
        "log_supported": False,
        "runnable_by": ["all_authenticated_users"],
        "visible_to": ["public"],
        "maximum_deadline": "P30D",
        "input_schema": {},
    }
    assert check_description(about) == []
    assert check_description({**about, "synchronous": "yes", "api_version": "1.1"}) == [
        'introspect: api_version is not "1.0"',
        "introspect: synchronous is not true or false",
    ]
    assert check_error(404, {"code": "NotFound", "description": "no"}, "s") == []
    assert check_error(404, {"message": "no"}, "s") == [
        "s: the HTTP 404 error has no code",
        "s: the HTTP 404 error has no description",
    ]
    assert check_cors({"Access-Control-Allow-Origin": "*"}, "i") == []
    assert check_cors({}, "i") == ["i: no Access-Control-Allow-Origin: * header"]
    gare = {
        "code": "ConsentRequired",
        "authorization_parameters": {"required_scopes": ["S1"], "session_message": "m"},
    }
    assert consent_scope({"details": gare}) == "S1"
    assert consent_scope({"details": {"required_scope": "S2"}}) == "S2"
    assert consent_scope({"details": {"waiting": True}}) is None
