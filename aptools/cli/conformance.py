"""What ``aptools flowtest`` holds a provider's answers to, free of I/O.

Each check takes one answer (a decoded JSON document, its HTTP status, its
headers) and returns the departures from the Action Provider Interface it
finds, one short sentence each, without quoting the provider's data beyond
field names and statuses. The rules come from the published interface
(``actions_spec.openapi.yaml``: ``ProviderDescription``, ``ActionStatus``,
``PrincipalURN``, ``ISO8601_duration``) and the behaviour it describes
(202 for a new action, 200 for a repeat, 404 for an action one may not see,
JSON errors with ``code`` and ``description``).

>>> check_status({"action_id": "a", "status": "DONE", "details": {}}, "run")
['run: status is not one of ACTIVE, INACTIVE, SUCCEEDED, FAILED', \
'run: creator_id is missing']
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from aptools.models import DURATION_PATTERN
from aptools.times import parse_datetime
from aptools.vocabulary import (
    ALL_AUTHENTICATED,
    PRINCIPAL_PATTERN,
    PUBLIC,
    STATUS_ORDER,
)

__all__ = [
    "check_cors",
    "check_description",
    "check_error",
    "check_status",
    "consent_scope",
]

_PRINCIPAL: Final = re.compile(PRINCIPAL_PATTERN)
_DURATION: Final = re.compile(DURATION_PATTERN)
#: The description's fields the interface requires.
_DESCRIPTION_REQUIRED: Final = (
    "types",
    "api_version",
    "title",
    "synchronous",
    "log_supported",
    "runnable_by",
    "globus_auth_scope",
    "admin_contact",
)
#: Text fields with their (least, most) length, by document.
_DESCRIPTION_LENGTHS: Final = {
    "title": (1, 128),
    "subtitle": (1, 128),
    "description": (1, 4096),
}
_STATUS_LENGTHS: Final = {"label": (1, 64), "display_status": (1, 64)}


def _length(doc: Mapping[str, Any], limits: Mapping[str, tuple[int, int]]) -> list[str]:
    said = []
    for name, (least, most) in limits.items():
        if name not in doc or doc[name] is None:
            continue
        value = doc[name]
        if not isinstance(value, str):
            said.append(f"{name} is not a string")
        elif not least <= len(value) <= most:
            said.append(f"{name} is {len(value)} characters long ({least}..{most})")
    return said


def _principals(
    doc: Mapping[str, Any], name: str, special: str | None = None
) -> list[str]:
    value = doc.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        return [f"{name} is not a list"]
    bad = [
        v
        for v in value
        if not (isinstance(v, str) and (_PRINCIPAL.match(v) or v == special))
    ]
    if bad:
        return [f"{name} holds {len(bad)} value(s) that are not principal URNs"]
    if len(set(value)) != len(value):
        return [f"{name} repeats a principal"]
    return []


def check_description(doc: Any) -> list[str]:
    """Departures of an introspection answer from ``ProviderDescription``."""
    if not isinstance(doc, Mapping):
        return ["introspect: the description is not a JSON object"]
    said = [f"{name} is missing" for name in _DESCRIPTION_REQUIRED if name not in doc]
    types = doc.get("types")
    if "types" in doc and not (
        isinstance(types, list) and types and set(types) <= {"Action", "Event"}
    ):
        said.append("types is not a list of Action / Event")
    if "api_version" in doc and doc["api_version"] != "1.0":
        said.append('api_version is not "1.0"')
    said.extend(
        f"{name} is not true or false"
        for name in ("synchronous", "log_supported")
        if name in doc and not isinstance(doc[name], bool)
    )
    scope = doc.get("globus_auth_scope")
    if "globus_auth_scope" in doc and not (isinstance(scope, str) and scope):
        said.append("globus_auth_scope is not a scope string")
    if "admin_contact" in doc and not isinstance(doc["admin_contact"], str):
        said.append("admin_contact is not a string")
    said += _length(doc, _DESCRIPTION_LENGTHS)
    said += _principals(doc, "visible_to", PUBLIC)
    said += _principals(doc, "runnable_by", ALL_AUTHENTICATED)
    said += _principals(doc, "administered_by")
    deadline = doc.get("maximum_deadline")
    if deadline is not None and not (
        isinstance(deadline, str) and _DURATION.match(deadline)
    ):
        said.append("maximum_deadline is not an ISO 8601 duration")
    if "input_schema" in doc and not isinstance(doc["input_schema"], Mapping):
        said.append("input_schema is not a JSON object")
    return [f"introspect: {s}" for s in said]


def _time(doc: Mapping[str, Any], name: str, said: list[str]) -> datetime | None:
    value = doc.get(name)
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except (ValueError, TypeError):
        said.append(f"{name} is not an RFC 3339 date-time")
        return None


def check_status(doc: Any, where: str) -> list[str]:
    """Departures of an action status (the answer of run, status, resume,
    cancel or release) from ``ActionStatus``; ``where`` names the operation."""
    if not isinstance(doc, Mapping):
        return [f"{where}: the answer is not a JSON object"]
    said: list[str] = []
    action_id = doc.get("action_id")
    if action_id is None:
        said.append("action_id is missing")
    elif not (isinstance(action_id, str) and action_id):
        said.append("action_id is not a non-empty string")
    if "status" not in doc:
        said.append("status is missing")
    elif doc["status"] not in STATUS_ORDER:
        said.append(f"status is not one of {', '.join(STATUS_ORDER)}")
    creator = doc.get("creator_id")
    if creator is None:
        said.append("creator_id is missing")
    elif not (isinstance(creator, str) and _PRINCIPAL.match(creator)):
        said.append("creator_id is not a principal URN")
    if "details" not in doc:
        said.append("details is missing")
    elif not isinstance(doc["details"], Mapping):
        said.append("details is not a JSON object")
    said += _length(doc, _STATUS_LENGTHS)
    said += _principals(doc, "monitor_by")
    said += _principals(doc, "manage_by")
    started = _time(doc, "start_time", said)
    ended = _time(doc, "completion_time", said)
    if started and ended and ended < started:
        said.append("completion_time is before start_time")
    release_after = doc.get("release_after")
    if release_after is not None and not (
        isinstance(release_after, str) and _DURATION.match(release_after)
    ):
        said.append("release_after is not an ISO 8601 duration")
    return [f"{where}: {s}" for s in said]


def check_error(status: int, doc: Any, where: str) -> list[str]:
    """Departures of an error answer (HTTP ``status``, JSON ``doc`` or None
    when the body was not JSON) from the interface's JSON errors."""
    if not isinstance(doc, Mapping):
        return [f"{where}: the HTTP {status} answer is not a JSON object"]
    return [
        f"{where}: the HTTP {status} error has no {name}"
        for name in ("code", "description")
        if not isinstance(doc.get(name), str) or not doc[name]
    ]


def check_cors(headers: Mapping[str, str], where: str) -> list[str]:
    """Departures of introspection's CORS headers (``headers`` matched
    without regard to case, as :mod:`requests` does): any origin may read it."""
    if headers.get("Access-Control-Allow-Origin") not in ("*",):
        return [f"{where}: no Access-Control-Allow-Origin: * header"]
    return []


def consent_scope(doc: Mapping[str, Any]) -> str | None:
    """The scope an INACTIVE action waits for consent to, or None when it
    waits for something else: the interface's ``required_scope``, else a
    Globus Auth Requirements Error's ``required_scopes`` (read by
    :func:`globus_sdk.gare.to_gare`)."""
    details = doc.get("details")
    if not isinstance(details, Mapping):
        return None
    scope = details.get("required_scope")
    if isinstance(scope, str) and scope:
        return scope
    from globus_sdk.gare import to_gare

    try:
        gare = to_gare(dict(details))
    except (ValueError, TypeError):
        gare = None
    if gare is None:
        return None
    scopes: Sequence[str] | None = gare.authorization_parameters.required_scopes
    return " ".join(scopes) if scopes else None
