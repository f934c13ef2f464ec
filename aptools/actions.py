"""What an answer does to an action: the rules that requests and background
jobs both apply.

A handler's or job's result folds into the action (:func:`apply`), a raised
:class:`~aptools.ActionFailed` ends it (:func:`fail`), a
:class:`~aptools.ConsentRequired` makes it wait (:func:`consent_needed`);
:func:`finish_fields` keeps a finished action's fields consistent and
:func:`expiry` says when a terminal action is released. No I/O here: the
protocol (:mod:`aptools.protocol`) and the job runner (:mod:`aptools.jobs`)
store what these functions decide.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from aptools.errors import ActionFailed, ConsentRequired
from aptools.forks import after_fork
from aptools.models import (
    Action,
    ActionStatus,
    completion_time_of,
    details_of,
    isoformat,
    parse_duration,
    timestamp_of,
)
from aptools.vocabulary import FAILED, INACTIVE, STATUSES, SUCCEEDED, TERMINAL

__all__ = [
    "CANCELED",
    "CONSENT_KEY",
    "CONSENT_NEEDED",
    "DEADLINE_PASSED",
    "INTERRUPTED",
    "apply",
    "consent_needed",
    "deadline_passed",
    "end_at_deadline",
    "expiry",
    "fail",
    "finish_fields",
    "new_action_id",
    "run_result",
]

CANCELED: Final = "Canceled"
#: The display status of an action that ended FAILED at its deadline.
DEADLINE_PASSED: Final = "Deadline passed"
#: The display status of a job's action that ended FAILED with its process.
INTERRUPTED: Final = "Interrupted: the process running it ended"
#: The display status of an action waiting for its caller's consent.
CONSENT_NEEDED: Final = "Consent required: consent, then resume"
#: Where an action waiting for consent keeps, in its private ``state``, what
#: needed the consent (``operation``: ``"run"``, ``"status"``, ``"resume"`` or
#: ``"job"``) and the details and display status it had before.
CONSENT_KEY: Final = "aptools.consent"


@functools.lru_cache(maxsize=256)
def _retention(release_after: str) -> float:
    return parse_duration(release_after)


def expiry(action: Action) -> float | None:
    if action.status not in TERMINAL:
        return None
    done = timestamp_of(action.completion_time or action.start_time)
    return done + _retention(action.release_after)


def apply(action: Action, result: Any) -> Action:
    """Fold a handler's answer into the action (in place) and return it.

    The one rule for every handler's result: a dict is the details of a
    SUCCEEDED action; an :class:`ActionStatus` or the :class:`Action` sets
    status, details (a dict, or a message string answered as
    ``{"message": text}``), display status, state and, for a finished
    action, ``completion_time``; ``None`` changes nothing (run refuses it
    before: :func:`run_result`). Anything else is a ``TypeError``.
    """
    if type(result) is dict:  # PERF: the common answer, checked first
        action.status, action.details = SUCCEEDED, dict(result)
    elif result is None:
        pass
    elif isinstance(result, ActionStatus):
        if result.status not in STATUSES:
            raise TypeError(f"handler returned unknown status {result.status!r}")
        action.status = result.status
        action.details = details_of(result.details)
        action.display_status = result.display_status
        if result.state is not None:
            action.state = result.state
        if result.completion_time is not None and result.status in TERMINAL:
            action.completion_time = completion_time_of(result.completion_time)
    elif isinstance(result, Action):
        if result is not action:
            action.status, action.details = result.status, result.details
            action.display_status, action.state = result.display_status, result.state
            action.completion_time = result.completion_time
        if action.status not in STATUSES:
            raise TypeError(f"handler set unknown status {action.status!r}")
        if type(action.details) is not dict:
            action.details = details_of(action.details)
    elif isinstance(result, Mapping):
        action.status, action.details = SUCCEEDED, dict(result)
    else:
        raise TypeError(
            "a handler must return a dict (the details of a SUCCEEDED action), "
            f"an ActionStatus, an Action or None, not {type(result).__name__}"
        )
    finish_fields(action)
    return action


def fail(action: Action, failed: ActionFailed) -> Action:
    action.status, action.details = FAILED, failed.details
    action.display_status = failed.display_status
    finish_fields(action)
    return action


def consent_needed(
    action: Action,
    needed: ConsentRequired,
    provider_scope: str,
    operation: str,
    **keep: Any,
) -> Action:
    """Make ``action`` INACTIVE, waiting for the consent ``needed`` names.

    Its details become ``needed.details(provider_scope)`` (the interface's
    ``code``, ``description``, ``required_scope`` and a Globus Auth
    Requirements Error's ``authorization_parameters``); what it had before,
    the ``operation`` to retry at resume and ``keep`` (what that needs, JSON
    values) go to ``state[CONSENT_KEY]``, never to callers.
    """
    waiting = action.state.get(CONSENT_KEY)
    if not isinstance(waiting, dict):
        waiting = {"details": action.details, "display_status": action.display_status}
    waiting.update(keep, operation=operation)
    action.state[CONSENT_KEY] = waiting
    action.status, action.details = INACTIVE, needed.details(provider_scope)
    action.display_status = CONSENT_NEEDED
    action.completion_time = None
    return action


def run_result(result: Any, handler: Callable[..., Any]) -> Any:
    """Run's result, refusing ``None``: a forgotten ``return`` is an error
    naming the handler, never a SUCCEEDED action."""
    if result is None:
        raise TypeError(
            f"the run handler {_name(handler)} returned None: return a dict "
            "(the details of a SUCCEEDED action) or an ActionStatus (such as "
            "ActionStatus.active() for work still going on), or raise "
            "ActionFailed"
        )
    return result


def _name(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"{name} ({code.co_filename}:{code.co_firstlineno})" if code else name


def finish_fields(action: Action) -> None:
    if action.display_status is not None and len(action.display_status) > 64:
        action.display_status = action.display_status[:64]
    if action.status in TERMINAL:
        # An action that ended while waiting for consent (canceled, past its
        # deadline) asks for it no more: its details are its own again.
        waiting = action.state.pop(CONSENT_KEY, None)
        if (
            isinstance(waiting, dict)
            and isinstance(action.details, dict)
            and action.details.get("code") == ConsentRequired.error_code
        ):
            action.details = dict(waiting.get("details") or {})
        if action.completion_time is None:
            # The work ended when the handler said so.
            action.completion_time = isoformat(time.time())
        # Same-format UTC timestamps order as text: completion never precedes
        # the start, even if the clock stepped back.
        action.completion_time = max(action.completion_time, action.start_time)


_entropy = threading.local()
# The RFC 4122 variant (10xx) digit for each hex digit drawn at its place:
# the drawn digit's two high bits choose among 8, 9, a and b.
_VARIANT: Final = {f"{n:x}": "89ab"[n >> 2] for n in range(16)}


def _fresh_entropy() -> None:
    _entropy.at = 8192


# A forked worker must not hand out its parent's unused randomness.
after_fork(_fresh_entropy)


def new_action_id() -> str:
    """A random (version 4) UUID as text, from the OS's random source.

    PERF: reads randomness 4 KiB at a time (one system call per 256 ids),
    kept as hex digits, and cuts each id from them with one format: several
    times faster than ``str(uuid.uuid4())``, and a quarter fewer
    instructions than formatting each id's bytes (callgrind).
    """
    local = _entropy
    at: int = getattr(local, "at", 8192)
    if at >= 8192:
        local.pool, at = os.urandom(4096).hex(), 0
    local.at = at + 32
    h: str = local.pool[at : at + 32]
    # The version (4) and variant (10xx) digits of RFC 4122.
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def deadline_passed(action: Action, now: float) -> bool:
    """Whether ``action`` is unfinished and its ``deadline`` (the run
    request's, RFC 3339) is at or before ``now`` (POSIX seconds)."""
    return (
        action.deadline is not None
        and action.status not in TERMINAL
        and timestamp_of(action.deadline) <= now
    )


def end_at_deadline(action: Action) -> Action:
    """End an unfinished action at its deadline (the interface: the action
    must be done by then): FAILED, displayed :data:`DEADLINE_PASSED`,
    whatever made it unfinished (a run handler, a job, a wait for consent)."""
    action.status, action.display_status = FAILED, DEADLINE_PASSED
    waiting = action.state.pop(CONSENT_KEY, None)
    if isinstance(waiting, dict):
        # The consent it waited for is moot: the details it had before.
        action.details = dict(waiting.get("details") or {})
    finish_fields(action)
    return action
