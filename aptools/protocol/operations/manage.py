"""cancel, release and resume: what the creator and ``manage_by`` may do."""

from __future__ import annotations

import time
from typing import Any

from aptools.actions import (
    CANCELED,
    CONSENT_KEY,
    apply,
    consent_needed,
    deadline_passed,
    end_at_deadline,
    fail,
    finish_fields,
)
from aptools.errors import (
    ActionFailed,
    Conflict,
    ConsentRequired,
)
from aptools.models import Action, ActionRequest
from aptools.protocol.access import (
    MANAGE,
    authenticate,
    load,
)
from aptools.protocol.effects import Blocking, Op
from aptools.protocol.lifecycle import (
    refresh,
    save,
)
from aptools.protocol.operations.run import run_outcome
from aptools.protocol.spec import Reply, Request, Spec
from aptools.times import parse_datetime
from aptools.vocabulary import ACTIVE, FAILED, INACTIVE, TERMINAL


def cancel(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    caller = yield from authenticate(spec, req)
    stored = yield from load(spec, caller, action_id, MANAGE)
    if stored.status in TERMINAL:
        return 200, stored.public
    if "cancel" in spec.handlers:
        stored = yield from refresh(spec, "cancel", stored, caller)
        if spec.jobs is not None and stored.status in TERMINAL:
            yield from spec.store_call(spec.jobs.cancel, action_id)
        return 200, stored.public
    action = stored.action()
    action.status, action.display_status = FAILED, CANCELED
    finish_fields(action)
    stored = yield from save(spec, action)
    if spec.jobs is not None:
        yield from spec.store_call(spec.jobs.cancel, action_id)
    return 200, stored.public


def release(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    caller = yield from authenticate(spec, req)
    stored = yield from load(spec, caller, action_id, MANAGE)
    if stored.status not in TERMINAL and "status" in spec.handlers:
        stored = yield from refresh(spec, "status", stored, caller)
    if stored.status not in TERMINAL:
        raise Conflict(
            "The action has not finished; cancel it or wait for it to end "
            "before releasing it."
        )
    if "release" in spec.handlers:
        yield spec.handlers["release"](stored.action(), caller)
    yield from spec.store_call(spec.store.delete, action_id)
    return 200, stored.public


def resume(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    """Go on with an INACTIVE action, as the resuming caller.

    With a resume handler, it decides. Without one, an action waiting for
    consent retries what needed it (the run handler with the stored request,
    the status handler, or the job from its checkpoint); a job's action
    INACTIVE for another reason is handed back to the job. An action that is
    not INACTIVE is answered as it is; one past its deadline ends FAILED
    ("Deadline passed") instead of going on.

    A job's action goes on by one compare-and-set (the action INACTIVE to
    ACTIVE and the job handed to the caller, together): of resumes at once,
    one wins and the others answer the action as that one left it.
    """
    caller = yield from authenticate(spec, req)
    stored = yield from load(spec, caller, action_id, MANAGE)
    if stored.status != INACTIVE:
        return 200, stored.public
    action = stored.action()
    # A provider's jobs keep their deadlines on the queue's clock (the
    # database's where hosts share it).
    jobs = spec.jobs
    now = time.time() if jobs is None else (yield from spec.store_call(jobs.now))
    if deadline_passed(action, now):
        return 200, (yield from save(spec, end_at_deadline(action))).public
    handler = "resume" in spec.handlers
    held = action.state.pop(CONSENT_KEY, None)
    if handler:
        retry = "resume"
    elif isinstance(held, dict):
        retry = str(held.get("operation"))
        action.status, action.details = ACTIVE, dict(held.get("details") or {})
        action.display_status = held.get("display_status")
    elif spec.jobs is not None:
        retry = "job"
        action.status = ACTIVE
    else:
        return 200, stored.public
    try:
        if retry == "run":
            result = yield spec.execution.submit(
                spec.handlers["run"], _request(action, held), caller
            )
            run_outcome(spec, action, result)
        elif retry in spec.handlers:
            apply(action, (yield spec.handlers[retry](action, caller)))
    except ActionFailed as failed:
        fail(action, failed)
    except ConsentRequired as needed:
        keep = {}
        if retry == "run":  # what rebuilding the request needs
            keep["allowed_clients"] = held.get("allowed_clients")
        consent_needed(action, needed, spec.auth.scope, retry, **keep)
    if jobs is None or action.status != ACTIVE:
        return 200, (yield from save(spec, action)).public
    # The job goes on from its checkpoint, acting as the resuming caller
    # (whose tokens for the declared scopes are granted now, while fresh).
    tokens = None
    if jobs.request_keys() is not None:
        if jobs.scopes:
            grant = jobs.kept_tokens, action, caller, spec.auth.scope
            tokens = yield Blocking(*grant)
        else:  # PERF: no Globus Auth call: no thread hop (50 us)
            tokens = jobs.kept_tokens(action, caller, spec.auth.scope)
        if action.status != ACTIVE:  # a declared scope still lacks consent
            return 200, (yield from save(spec, action)).public
    resumed = yield from spec.store_call(jobs.resume, action, caller, tokens)
    if resumed is not None:
        jobs.wake()
        return 200, resumed.public
    # Another resume won, or the action ended meanwhile: answer it as it is.
    # Still INACTIVE, its job's deadline passed by the queue's clock.
    current = yield from load(spec, caller, action_id, MANAGE)
    if current.status != INACTIVE:
        return 200, current.public
    return 200, (yield from save(spec, end_at_deadline(current.action()))).public


def _request(action: Action, held: Any) -> ActionRequest:
    """The run request of ``action``, rebuilt from what the store keeps."""
    allowed = held.get("allowed_clients") if isinstance(held, dict) else None
    return ActionRequest(
        action_id=action.action_id,
        request_id=action.request_id,
        body=action.body,
        label=action.label,
        monitor_by=tuple(action.monitor_by),
        manage_by=tuple(action.manage_by),
        allowed_clients=None if allowed is None else tuple(allowed),
        deadline=None if action.deadline is None else parse_datetime(action.deadline),
        release_after=action.release_after,
    )
