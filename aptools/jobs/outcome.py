"""What a job's end stores: its action's final state, from what the job
function returned or raised (:class:`~aptools.jobs.runner.Runner`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from aptools.actions import apply, consent_needed, expiry, fail, finish_fields
from aptools.errors import ActionFailed, ConsentRequired
from aptools.jobs import fairshare
from aptools.jobs.handle import Job
from aptools.jobs.stopping import unstorable
from aptools.models import Action, ActionStatus
from aptools.store import Stored
from aptools.vocabulary import ACTIVE, FAILED, INACTIVE

__all__ = ["Outcome", "outcome"]

log = logging.getLogger("aptools.jobs")

_GENERIC: Final = {
    "code": "JobFailed",
    "description": "The job failed with an unexpected error.",
}

#: The action's state to store, when it expires (a POSIX time or ``None``),
#: and whether the job keeps its row (waiting INACTIVE for its caller).
Outcome = tuple[Stored, float | None, bool]


def outcome(engine: Any, job: Job, result: Any, exc: BaseException | None) -> Outcome:
    """The end of ``job`` whose function returned ``result`` (``exc`` is
    ``None``) or raised ``exc``: SUCCEEDED with the returned details (a
    dict or an :class:`ActionStatus`), FAILED with an
    :class:`~aptools.ActionFailed`'s details, INACTIVE for
    :class:`~aptools.ConsentRequired`, FAILED ("JobFailed", logged) for any
    other error or for a result that cannot be stored. Changes
    ``job.action``."""
    action: Action = job.action
    fairshare.finished(engine, action)
    fresh: Stored | None = None
    if exc is None:
        try:
            checked = _checked(result)
            apply(action, {} if checked is None else checked)
            fresh = Stored.of(action)
        except TypeError as bad:  # also what orjson cannot serialize
            exc = unstorable(action.action_id, bad)
    if isinstance(exc, ActionFailed):
        fail(action, exc)
        try:
            fresh = Stored.of(action)
        except TypeError as bad:  # details JSON cannot hold
            fail(action, unstorable(action.action_id, bad))
    elif isinstance(exc, ConsentRequired):
        # INACTIVE until resumed; the job keeps its row and checkpoint.
        consent_needed(action, exc, engine.auth.scope, "job")
    elif exc is not None:
        log.error(
            "job %s failed",
            action.action_id,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        action.status, action.details = FAILED, dict(_GENERIC)
        action.display_status = "Failed"
        finish_fields(action)
    final = Stored.of(action) if fresh is None else fresh
    return final, expiry(action), action.status == INACTIVE


def _checked(result: Any) -> Any:
    if isinstance(result, ActionStatus) and result.status == ACTIVE:
        raise TypeError("a job must end its action; it returned an ACTIVE status")
    if result is not None and not isinstance(result, Mapping | ActionStatus):
        raise TypeError(
            "a job must return a dict (the details of a SUCCEEDED action) or an "
            f"ActionStatus, not {type(result).__name__}"
        )
    return result
