"""The documents of the Action Provider Interface, as handlers see them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

__all__ = [
    "ACTIVE",
    "FAILED",
    "INACTIVE",
    "SUCCEEDED",
    "TERMINAL",
    "Action",
    "ActionRequest",
    "ActionStatus",
    "EnumerateQuery",
    "LogEntry",
    "LogPage",
    "LogQuery",
    "StatusName",
    "parse_duration",
]

# Kept importable from here: date-time text lives in aptools.times.
from aptools.times import isoformat as isoformat
from aptools.times import parse_datetime
from aptools.times import timestamp_of as timestamp_of
from aptools.vocabulary import (
    ACTIVE,
    FAILED,
    INACTIVE,
    SUCCEEDED,
    TERMINAL,
    StatusName,
)

# The ISO 8601 duration form of the published interface (``P30D``, ``PT1H30M``).
DURATION_PATTERN: Final = (
    r"^P(?!$)(\d+(?:\.\d+)?Y)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?W)?(\d+(?:\.\d+)?D)?"
    r"(T(?=\d)(\d+(?:\.\d+)?H)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?S)?)?$"
)
_DURATION = re.compile(DURATION_PATTERN)
# Years and months have no fixed length; these are the lengths retention uses.
_UNIT_SECONDS = (365 * 86400, 30 * 86400, 7 * 86400, 86400, None, 3600, 60, 1)


def parse_duration(text: str) -> float:
    """Seconds in an ISO 8601 duration (a year counts 365 days, a month 30).

    >>> parse_duration("PT1H30M")
    5400.0
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    total = 0.0
    for part, unit in zip(match.groups(), _UNIT_SECONDS, strict=True):
        if part and unit:
            total += float(part[:-1]) * unit
    return total


Details = Mapping[str, Any] | str | None


def details_of(details: Details) -> dict[str, Any]:
    """An action's ``details`` as the interface requires them: an object.

    ``None`` is ``{}``; a string (a message) is ``{"message": text}``; a
    mapping is copied. Anything else is a ``TypeError`` naming its type.

    >>> details_of("disk full")
    {'message': 'disk full'}
    """
    if details is None:
        return {}
    if isinstance(details, str):
        return {"message": details}
    if isinstance(details, Mapping):
        return dict(details)
    raise TypeError(
        "an action's details must be a dict or a message string, not "
        f"{type(details).__name__}"
    )


def completion_time_of(value: datetime | str | None) -> str | None:
    """RFC 3339 UTC text for a handler's ``completion_time``.

    A ``datetime`` must carry a time zone; a string must be such a date-time.
    Raises ``TypeError`` or ``ValueError`` otherwise.
    """
    if value is None:
        return None
    moment = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise TypeError(
            f"completion_time must be a datetime, not {type(value).__name__}"
        )
    if moment.tzinfo is None:
        raise ValueError("completion_time must carry a time zone")
    return isoformat(moment.timestamp())


@dataclass(slots=True, kw_only=True)
class ActionStatus:
    """What a handler returns to take full control of an action's state.

    Build one with the shortcuts::

        return ActionStatus.active({"progress": 0.5}, display_status="Copying")
        return ActionStatus.succeeded({"result": 42})

    ``state`` is private to the provider: it is stored with the action and
    handed back to later handlers, but never sent to callers.

    ``details`` is a dict, or a message string answered as
    ``{"message": text}`` (:func:`details_of`). ``completion_time`` (a
    time-zone-aware ``datetime`` or RFC 3339 text) says when a finished
    action's work ended; by default, when the handler reported the end.
    """

    status: StatusName
    details: dict[str, Any] = field(default_factory=dict)
    display_status: str | None = None
    state: dict[str, Any] | None = None
    completion_time: datetime | str | None = None

    def __post_init__(self) -> None:
        if type(self.details) is not dict:
            self.details = details_of(self.details)

    @classmethod
    def active(
        cls,
        details: Details = None,
        *,
        display_status: str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> ActionStatus:
        """An action still working."""
        return cls._make(ACTIVE, details, display_status, state)

    @classmethod
    def inactive(
        cls,
        details: Details = None,
        *,
        display_status: str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> ActionStatus:
        """An action paused until something outside the API happens."""
        return cls._make(INACTIVE, details, display_status, state)

    @classmethod
    def succeeded(
        cls,
        details: Details = None,
        *,
        display_status: str | None = None,
        state: Mapping[str, Any] | None = None,
        completion_time: datetime | str | None = None,
    ) -> ActionStatus:
        """A finished action; ``details`` is its result."""
        made = cls._make(SUCCEEDED, details, display_status, state)
        made.completion_time = completion_time
        return made

    @classmethod
    def failed(
        cls,
        details: Details = None,
        *,
        display_status: str | None = None,
        state: Mapping[str, Any] | None = None,
        completion_time: datetime | str | None = None,
    ) -> ActionStatus:
        """A failed action; ``details`` says why (a dict, or a message)."""
        made = cls._make(FAILED, details, display_status, state)
        made.completion_time = completion_time
        return made

    @classmethod
    def _make(
        cls,
        status: StatusName,
        details: Details,
        display_status: str | None,
        state: Mapping[str, Any] | None,
    ) -> ActionStatus:
        return cls(
            status=status,
            details=details_of(details),
            display_status=display_status,
            state=None if state is None else dict(state),
        )


@dataclass(slots=True, frozen=True, kw_only=True)
class ActionRequest:
    """A validated run request, as the run handler receives it."""

    action_id: str
    request_id: str
    body: dict[str, Any]
    label: str | None = None
    monitor_by: tuple[str, ...] = ()
    manage_by: tuple[str, ...] = ()
    allowed_clients: tuple[str, ...] | None = None
    deadline: datetime | None = None
    release_after: str = "P30D"


@dataclass(slots=True, kw_only=True)
class Action:
    """An action as the provider stores it; handlers receive a private copy.

    ``body`` is the run request's body and ``state`` the provider's private
    data; neither is ever sent to callers. ``details`` set to a message
    string is answered as ``{"message": text}`` (:func:`details_of`).
    """

    action_id: str
    status: StatusName
    creator_id: str
    details: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    monitor_by: list[str] = field(default_factory=list)
    manage_by: list[str] = field(default_factory=list)
    start_time: str = ""
    completion_time: str | None = None
    release_after: str = "P30D"
    display_status: str | None = None
    deadline: str | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        """True once the action SUCCEEDED or FAILED; it never changes again."""
        return self.status in TERMINAL

    def to_public(self) -> dict[str, Any]:
        """The action status document a caller receives."""
        doc: dict[str, Any] = {
            "action_id": self.action_id,
            "status": self.status,
            "creator_id": self.creator_id,
            "monitor_by": self.monitor_by,
            "manage_by": self.manage_by,
            "start_time": self.start_time,
            "release_after": self.release_after,
            # The one rule, wherever the details came from (a handler's
            # answer, an action changed in place, a job's report): an object.
            "details": (
                self.details if type(self.details) is dict else details_of(self.details)
            ),
        }
        # Optional members are left out rather than sent as null: the published
        # schema types them as strings.
        if self.label is not None:
            doc["label"] = self.label
        if self.completion_time is not None:
            doc["completion_time"] = self.completion_time
        if self.display_status is not None:
            doc["display_status"] = self.display_status
        return doc

    def to_private(self) -> dict[str, Any]:
        """What a store keeps beyond :meth:`to_public`."""
        return {
            "request_id": self.request_id,
            "body": self.body,
            "deadline": self.deadline,
            "state": self.state,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Action:
        """An action from :meth:`to_public` merged with :meth:`to_private`."""
        return cls(**doc)


@dataclass(slots=True, frozen=True, kw_only=True)
class LogQuery:
    """The paging arguments of a log request."""

    limit: int = 10
    marker: str | None = None
    reverse_order: bool = False


@dataclass(slots=True, kw_only=True)
class LogEntry:
    """One entry of an action's log: ``time`` (RFC 3339 text), ``code`` and
    ``description``; ``details`` a dict, or a message string answered as
    ``{"message": text}``."""

    time: str
    code: str
    description: str
    details: Details = None

    def to_public(self) -> dict[str, Any]:
        """The entry as a log page holds it; ``details`` as an object
        (:func:`details_of`), left out when ``None``."""
        doc: dict[str, Any] = {
            "time": self.time,
            "code": self.code,
            "description": self.description,
        }
        if self.details is not None:
            doc["details"] = details_of(self.details)
        return doc

    @staticmethod
    def public_of(entry: LogEntry | Mapping[str, Any]) -> dict[str, Any]:
        """A log handler's entry (a :class:`LogEntry` or a mapping with
        ``time``, ``code``, ``description`` and optional ``details``) as a log
        page holds it: ``details``, when there, as an object (:func:`details_of`)."""
        if isinstance(entry, LogEntry):
            return entry.to_public()
        doc = dict(entry)
        if doc.get("details") is not None:
            doc["details"] = details_of(doc["details"])
        return doc


@dataclass(slots=True, kw_only=True)
class LogPage:
    """A page of log entries; ``marker`` fetches the next page."""

    entries: Sequence[LogEntry | Mapping[str, Any]]
    has_next_page: bool = False
    marker: str | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class EnumerateQuery:
    """An enumerate request: its filters and the stored actions they select.

    ``statuses`` holds upper-case status names (``{"ACTIVE"}`` unless the
    request's ``status`` said otherwise); ``roles`` the role names
    ``creator_id``, ``monitor_by`` and ``manage_by`` (``{"creator_id"}`` by
    default). ``actions`` holds only actions the caller may see, in the
    requested roles and statuses, oldest first (private copies: change
    them and return them to refresh them).

    The answer of ``GET /actions`` is a JSON array of action status documents,
    each as status answers it (``action_id``, ``status``, ``creator_id``,
    ``details``, ``start_time``, ...); all of them, not paged.
    """

    statuses: frozenset[str]
    roles: frozenset[str]
    actions: list[Action]
