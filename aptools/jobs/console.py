"""The job console: a provider's unfinished jobs as its operator sees them,
and what the operator may do to one (cancel, fail, requeue).

Read by ``aptools jobs`` (from the provider's store, in any process on any
host) and by the administrators' route ``GET {prefix}/jobs``. Each job is
in one state:

- ``queued``: its action is ACTIVE and no process holds it (never claimed,
  handed back, or its holder's lease ran out: the next claim takes it);
- ``running``: its action is ACTIVE and a process holds it (a live lease);
- ``waiting``: its action is INACTIVE, waiting for its caller (consent);
- ``stuck``: its action ended but a process still holds the row (the
  function has not returned), or it was taken over so often that the next
  take-overs end it (:data:`~aptools.jobs.runner.MOST_ATTEMPTS`).

Every act is written in the action's log (what its ``log`` route answers,
as a job's own :meth:`~aptools.Job.progress` entries are) naming who did it.
A requeue takes the row from its holder by counting its claim up
(:meth:`~aptools.store.jobqueue.JobQueue.release`): the old holder's every
later write is refused (:class:`~aptools.JobLost`) and it stops.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aptools.actions import CANCELED, expiry, finish_fields
from aptools.jobs.handle import LOG_KEY, LOG_LIMIT
from aptools.jobs.runner import MOST_ATTEMPTS
from aptools.store.records import Stored
from aptools.times import isoformat
from aptools.vocabulary import ACTIVE, FAILED, IDENTITY_URN, INACTIVE, TERMINAL

if TYPE_CHECKING:
    from aptools.models import Action
    from aptools.store import Store
    from aptools.store.jobqueue import JobQueue, JobRow

__all__ = [
    "STATES",
    "ConsoleError",
    "JobView",
    "cancel_job",
    "fail_job",
    "list_jobs",
    "requeue_job",
    "show_job",
    "table",
]

#: The states a job is listed in, in the listing's order.
STATES: Final = ("running", "queued", "waiting", "stuck")
#: Take-overs from which a resumable job counts as stuck: the next ones end it.
NEAR_LIMIT: Final = MOST_ATTEMPTS - 2
#: How long (seconds) a requeue holds the job while it writes the log.
_HOLD: Final = 30.0
#: The display status of an action an operator failed.
FAILED_BY_OPERATOR: Final = "Failed by the provider's operator"
#: The longest message ``fail`` takes (characters).
MESSAGE_MOST: Final = 1000


class ConsoleError(ValueError):
    """An act the job console refuses: no such job, or not in a state the
    act applies to. Its message is one line for the operator."""


@dataclass(slots=True, frozen=True)
class JobView:
    """One unfinished job as the console shows it.

    ``state`` is one of :data:`STATES`; ``held_by`` is ``{"host", "pid",
    "owner"}`` of the process holding it, or ``None``; ``lease_left``,
    ``age`` are seconds; ``lease_expires``, ``deadline`` and ``enqueued_at``
    RFC 3339 times (``None`` when there is none). ``takeovers`` counts the
    claims after the first (``attempts - 1``).
    """

    action_id: str
    state: str
    status: str | None
    display_status: str | None
    caller: str | None
    username: str | None
    held_by: dict[str, Any] | None
    lease_expires: str | None
    lease_left: float | None
    attempts: int
    takeovers: int
    deadline: str | None
    enqueued_at: str
    age: float
    cancel_requested: bool

    def to_json(self) -> dict[str, Any]:
        """The job as a JSON object (the ``--json`` listing's and the
        administrators' route's)."""
        return {
            "action_id": self.action_id,
            "state": self.state,
            "status": self.status,
            "display_status": self.display_status,
            "caller": self.caller,
            "username": self.username,
            "held_by": self.held_by,
            "lease_expires": self.lease_expires,
            "lease_left": self.lease_left,
            "attempts": self.attempts,
            "takeovers": self.takeovers,
            "deadline": self.deadline,
            "enqueued_at": self.enqueued_at,
            "age": self.age,
            "cancel_requested": self.cancel_requested,
        }


def _holder(owner: str | None) -> dict[str, Any] | None:
    if not owner:
        return None
    host = owner.rpartition(":")[0]
    host, _, pid = host.rpartition(":")
    if not pid.isdigit():
        return {"host": None, "pid": None, "owner": owner}
    return {"host": host, "pid": int(pid), "owner": owner}


def _state(
    row: JobRow, stored: Stored | None, now: float, resumable: bool
) -> str | None:
    held = row.owner is not None and row.lease_until >= now
    if stored is None or stored.status in TERMINAL:
        # Ended with its row still held: the function has not returned.
        return "stuck" if held else None
    if stored.status == INACTIVE:
        return "waiting"
    if resumable and row.attempts >= NEAR_LIMIT:
        return "stuck"
    return "running" if held else "queued"


def _view(
    row: JobRow, stored: Stored | None, now: float, resumable: bool
) -> JobView | None:
    state = _state(row, stored, now, resumable)
    if state is None:
        return None
    held = row.owner is not None and row.lease_until >= now
    display = None
    if stored is not None:
        display = stored.action().display_status
    return JobView(
        action_id=row.action_id,
        state=state,
        status=None if stored is None else stored.status,
        display_status=display,
        caller=row.caller.get("identity_id"),
        username=row.caller.get("username"),
        held_by=_holder(row.owner) if held else None,
        lease_expires=isoformat(row.lease_until) if held else None,
        lease_left=round(row.lease_until - now, 1) if held else None,
        attempts=row.attempts,
        takeovers=max(row.attempts - 1, 0),
        deadline=None if row.deadline is None else isoformat(row.deadline),
        enqueued_at=isoformat(row.enqueued_at),
        age=round(max(now - row.enqueued_at, 0.0), 1),
        cancel_requested=row.cancel_requested,
    )


def list_jobs(
    store: Store,
    queue: JobQueue,
    *,
    states: Collection[str] = (),
    caller: str | None = None,
    resumable: bool = True,
) -> list[JobView]:
    """The provider's unfinished jobs, oldest first: those in ``states``
    (all of :data:`STATES` when empty) whose caller's identity id or
    username is ``caller`` (any when ``None``). ``resumable`` is the job's
    setting (a job that is not is never stuck for its take-overs). Raises
    :class:`~aptools.StoreUnavailable` as the store does. An identity id
    may be given as its URN (``urn:globus:auth:identity:ID``, as action
    documents show it)."""
    if caller is not None and caller.startswith(IDENTITY_URN):
        caller = caller[len(IDENTITY_URN) :]
    now = queue.now()
    found = []
    for row in queue.rows():
        view = _view(row, store.get(row.action_id, now), now, resumable)
        if view is None or (states and view.state not in states):
            continue
        if caller is not None and caller not in (view.caller, view.username):
            continue
        found.append(view)
    return found


def show_job(
    store: Store, queue: JobQueue, action_id: str, *, resumable: bool = True
) -> dict[str, Any]:
    """One job in full: its :class:`JobView` fields, ``caller_record`` (the
    identity record kept with it) and ``action`` (the action's public
    document, log entries included). Raises :class:`ConsoleError` when the
    provider has no unfinished job ``action_id``."""
    now = queue.now()
    row = _row(queue, action_id)
    stored = store.get(action_id, now)
    view = _view(row, stored, now, resumable)
    if view is None:
        raise ConsoleError(f"job {action_id} has ended")
    full = view.to_json()
    full["caller_record"] = dict(row.caller)
    if stored is not None:
        action = stored.action()
        full["action"] = action.to_public()
        full["log"] = list(action.state.get(LOG_KEY, ()))
    return full


def _row(queue: JobQueue, action_id: str) -> JobRow:
    for row in queue.rows():
        if row.action_id == action_id:
            return row
    raise ConsoleError(f"no job {action_id} at this provider")


def _logged(action: Action, code: str, description: str) -> None:
    entries = list(action.state.get(LOG_KEY, ()))
    entries.append(
        {"code": code, "description": description, "time": isoformat(time.time())}
    )
    action.state[LOG_KEY] = entries[-LOG_LIMIT:]


def _unfinished(store: Store, queue: JobQueue, action_id: str) -> Action:
    _row(queue, action_id)
    stored = store.get(action_id, queue.now())
    if stored is None or stored.status in TERMINAL:
        raise ConsoleError(f"job {action_id} has ended (its action is final)")
    return stored.action()


def _end(store: Store, queue: JobQueue, action: Action) -> Stored:
    finish_fields(action)
    stored = store.update(
        action.action_id, Stored.of(action), expiry(action), time.time()
    )
    # The holder learns it at its next heartbeat (or write) and stops.
    queue.request_cancel(action.action_id)
    if stored is None:
        raise ConsoleError(f"job {action.action_id}: its action is gone")
    return stored


def cancel_job(store: Store, queue: JobQueue, action_id: str, who: str) -> Stored:
    """End the job's action FAILED ("Canceled"), as a caller's cancel does,
    and tell its holder to stop; ``who`` (the operator) is named in the
    action's log. Raises :class:`ConsoleError` when there is no such job
    or its action ended."""
    action = _unfinished(store, queue, action_id)
    action.status, action.display_status = FAILED, CANCELED
    _logged(action, "CanceledByOperator", f"Canceled by {who}")
    return _end(store, queue, action)


def fail_job(
    store: Store, queue: JobQueue, action_id: str, message: str, who: str
) -> Stored:
    """End the job's action FAILED with ``message`` (at most
    :data:`MESSAGE_MOST` characters, printable) as its details'
    ``description``, and tell its holder to stop; ``who`` is named in the
    action's log. Raises :class:`ConsoleError` for an unusable message, no
    such job, or an ended action."""
    message = message.strip()
    if not message or len(message) > MESSAGE_MOST or not message.isprintable():
        raise ConsoleError(
            f"the message must be 1 to {MESSAGE_MOST} printable characters"
        )
    action = _unfinished(store, queue, action_id)
    action.status, action.display_status = FAILED, FAILED_BY_OPERATOR
    action.details = {"code": "FailedByOperator", "description": message}
    _logged(action, "FailedByOperator", f"Failed by {who}: {message}")
    return _end(store, queue, action)


def requeue_job(
    store: Store,
    queue: JobQueue,
    action_id: str,
    who: str,
    *,
    resumable: bool = True,
) -> str:
    """Take a running or stuck job from its holder (fenced: its later
    writes are refused) and make it claimable at once; ``who`` is named in
    the action's log when the action is unfinished (a stuck job whose
    action ended is only let go, for the sweep to delete). Returns the
    job's state before. Raises :class:`ConsoleError` for a queued job
    (nothing holds it), a waiting one (its caller resumes it) or no job."""
    now = queue.now()
    row = _row(queue, action_id)
    stored = store.get(action_id, now)
    view = _view(row, stored, now, resumable)
    if view is None:
        raise ConsoleError(f"job {action_id} has ended")
    if view.state in ("queued", "waiting"):
        raise ConsoleError(
            f"job {action_id} is {view.state}: only a running or stuck job is "
            "requeued" + (" (its caller resumes it)" if view.state == "waiting" else "")
        )
    # Taken from its holder (fenced out from now on) and held by the console
    # while it writes the log, so that no new claim reads the action first;
    # then handed back, claimable at once, this take not an attempt.
    fence = queue.take(action_id, f"console ({who})", _HOLD)
    if fence is None:
        raise ConsoleError(f"no job {action_id} at this provider")
    try:
        stored = store.get(action_id, queue.now())  # as its last holder left it
        if stored is not None and stored.status == ACTIVE:
            action = stored.action()
            held = "" if view.held_by is None else f" from {view.held_by['owner']}"
            _logged(action, "RequeuedByOperator", f"Requeued{held} by {who}")
            queue.save(fence, Stored.of(action), None)
    finally:
        queue.hand_back([fence])
    return view.state


def table(views: Iterable[JobView]) -> str:
    """The listing as text: one line per job, columns aligned."""
    head = ("ACTION", "STATE", "CALLER", "HELD BY", "LEASE", "ATT", "DEADLINE", "AGE")
    lines = [head]
    for v in views:
        held = (
            "-"
            if v.held_by is None
            else (
                f"{v.held_by['host']}:{v.held_by['pid']}"
                if v.held_by["pid"] is not None
                else str(v.held_by["owner"])
            )
        )
        lines.append(
            (
                v.action_id,
                v.state,
                v.username or v.caller or "-",
                held,
                "-" if v.lease_left is None else f"{v.lease_left:.0f}s",
                f"{v.attempts}/{v.takeovers}",
                v.deadline or "-",
                _age(v.age),
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
