"""An action's life over a request: how a changed action is saved, how a
handler refreshes it, and how a crash is answered. What an answer does to an
action is :mod:`aptools.actions` (shared with the job runner)."""

from __future__ import annotations

import logging
import time

import falcon

from aptools.actions import (
    CONSENT_KEY,
    apply,
    consent_needed,
    deadline_passed,
    end_at_deadline,
    expiry,
    fail,
)
from aptools.auth import Caller
from aptools.errors import ActionFailed, ConsentRequired, InternalError, NotFound
from aptools.logtext import quoted
from aptools.models import Action
from aptools.protocol.access import UNKNOWN
from aptools.protocol.effects import Op
from aptools.protocol.spec import Spec
from aptools.store import Stored
from aptools.vocabulary import TERMINAL

log = logging.getLogger("aptools")


def save(spec: Spec, action: Action, fresh: Stored | None = None) -> Op[Stored]:
    """Store a changed, already stored action; 404 if it went meanwhile.

    ``fresh`` is ``Stored.of(action)`` when the caller has it already.
    """
    stored = yield from spec.store_call(
        spec.store.update,
        action.action_id,
        fresh or Stored.of(action),
        expiry(action),
        time.time(),
    )
    if stored is None:
        raise NotFound(UNKNOWN)
    return stored


def overdue(spec: Spec, stored: Stored, now: float) -> bool:
    """Whether ``stored`` is unfinished past its deadline and no job queue
    enforces it (a provider's jobs are ended at their deadline by the queue,
    on its clock; other actions when they are read).

    PERF: decodes the action only when it is unfinished.
    """
    return (
        spec.jobs is None
        and stored.status not in TERMINAL
        and deadline_passed(stored.action(), now)
    )


def settle(spec: Spec, stored: Stored) -> Op[Stored]:
    """``stored``, ended FAILED ("Deadline passed") and saved first if it is
    :func:`overdue`: a deadline holds whatever made the action unfinished."""
    if overdue(spec, stored, time.time()):
        return (yield from save(spec, end_at_deadline(stored.action())))
    return stored


def refresh(spec: Spec, name: str, stored: Stored, caller: Caller) -> Op[Stored]:
    """Let handler ``name`` update a non-terminal action; store what changed.

    The status handler leaves an action waiting for consent to resume.
    ``ConsentRequired`` from the status or resume handler makes the action
    INACTIVE (:func:`consent_needed`); from others it is answered as an error.
    """
    action = stored.action()
    if name == "status" and CONSENT_KEY in action.state:
        return stored  # waiting for consent: nothing changes before resume
    try:
        result = yield spec.handlers[name](action, caller)
        apply(action, result)
    except ActionFailed as failed:
        fail(action, failed)
    except ConsentRequired as needed:
        if name not in ("status", "resume"):
            raise
        consent_needed(action, needed, spec.auth.scope, name)
    fresh = Stored.of(action)
    if fresh.same(stored):
        return stored
    return (yield from save(spec, action, fresh))


def crash_reply(req: falcon.Request, exc: BaseException) -> InternalError:
    """Log an exception that escaped a handler; the caller sees only a 500."""
    log.error(
        "unhandled error on %s %s",
        quoted(req.method),
        quoted(req.path),
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return InternalError()
