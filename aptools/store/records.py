"""What a store keeps and answers: an action as stored (:class:`Stored`),
the request key that made it (:class:`RequestKey`) and the outcome of
holding one (:class:`Reservation`). Read by the store contract
(:mod:`aptools.store.base`) and the job-queue contract
(:mod:`aptools.store.jobqueue`) alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

import orjson

from aptools.models import Action

__all__ = [
    "CONFLICT",
    "NEW",
    "PENDING",
    "ROLES",
    "RequestKey",
    "Reservation",
    "Stored",
]

ROLES: Final = ("creator_id", "monitor_by", "manage_by")


class RequestKey(NamedTuple):
    """What makes two run requests the same request (the interface's
    idempotency rule): who sent it, its ``request_id``, and the document.

    ``(creator_id, request_id)`` is the key a store holds;
    ``fingerprint`` tells a retry (same document) from a conflict (another).
    """

    #: The caller's principal URN (``urn:globus:auth:identity:<uuid>``).
    creator_id: str
    #: The client's ``request_id`` from the run document.
    request_id: str
    #: SHA-256 hex digest of the whole run document (sorted keys).
    fingerprint: str


class Stored(NamedTuple):
    """An action as a store holds it: already serialized.

    ``public`` is the status document callers receive and ``doc`` the rest
    of the action (see :meth:`Action.to_private`); :meth:`action` decodes the
    two. Answering a status request needs no JSON work at all. (PERF: a named
    tuple, so a store builds one from a database row at the cost of a tuple.)
    """

    action_id: str
    status: str
    creator_id: str
    public: bytes
    doc: bytes

    @classmethod
    def of(cls, action: Action) -> Stored:
        # PERF: serialized once per write, and the stored fields only once;
        # reads hand the bytes straight out.
        return cls(
            action.action_id,
            action.status,
            action.creator_id,
            orjson.dumps(action.to_public()),
            orjson.dumps(action.to_private()),
        )

    def action(self) -> Action:
        """A private, decoded copy of the action."""
        return Action.from_doc({**orjson.loads(self.public), **orjson.loads(self.doc)})

    def same(self, other: Stored) -> bool:
        """True when both hold the same action in the same state."""
        return self.doc == other.doc and self.public == other.public

    def trimmed(self) -> Stored:
        """A copy whose documents take no more memory than their length.

        orjson hands out its output in a larger buffer (4 KiB for a small
        document); a store keeping documents in memory keeps copies instead.
        """
        # PERF: built directly; NamedTuple._replace costs three times more.
        return Stored(
            self.action_id,
            self.status,
            self.creator_id,
            memoryview(self.public).tobytes(),
            memoryview(self.doc).tobytes(),
        )


@dataclass(slots=True, frozen=True)
class Reservation:
    """The outcome of :meth:`Store.reserve`.

    ``outcome`` is one of:

    - ``"new"``: the key was free and is now held for ``action_id``; run the
      handler, then :meth:`Store.create` or :meth:`Store.abandon`.
    - ``"existing"``: the same request finished before; ``stored`` is its action.
    - ``"pending"``: the same request is being handled right now elsewhere.
    - ``"conflict"``: the key was used for a different request document.
    """

    outcome: Literal["new", "existing", "pending", "conflict"]
    stored: Stored | None = None


# PERF: the outcomes that carry no action, made once (a frozen dataclass
# costs a microsecond to build).
NEW: Final = Reservation("new")
PENDING: Final = Reservation("pending")
CONFLICT: Final = Reservation("conflict")
