"""run: start an action, once per request key (the interface's idempotency)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from aptools.errors import (
    ActionFailed,
    BadRequest,
    Conflict,
    PayloadTooLarge,
    RequestValidationError,
    UnprocessableEntity,
)
from aptools.models import Action, ActionRequest, isoformat
from aptools.protocol.access import (
    authenticate,
    cached_caller,
    require,
)
from aptools.protocol.effects import Blocking, Op, ReadBody, Sleep
from aptools.protocol.lifecycle import (
    apply,
    expiry,
    fail,
    new_action_id,
)
from aptools.protocol.spec import Reply, Request, Spec
from aptools.store import Reservation, Stored
from aptools.vocabulary import TERMINAL


def _read_document(spec: Spec, req: Request) -> Op[Any]:
    length = req.content_length
    if length is not None and length > spec.max_body:
        raise PayloadTooLarge(f"The request body may be at most {spec.max_body} bytes.")
    raw: bytes = yield ReadBody(req, spec.max_body)
    if len(raw) > spec.max_body:
        raise PayloadTooLarge(f"The request body may be at most {spec.max_body} bytes.")
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON object is required.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = "nested too deeply" if "depth" in exc.msg else "not valid JSON"
        raise BadRequest(
            f"The request body is {reason} (line {exc.lineno}, column {exc.colno})."
        ) from None


def _deadline(spec: Spec, text: str | None, now: float) -> datetime | None:
    if text is None:
        return None
    try:
        deadline = datetime.fromisoformat(text)
    except ValueError:
        raise RequestValidationError(
            "$.deadline: must be an RFC 3339 date-time (rule 'format')"
        ) from None
    if deadline.tzinfo is None:
        raise RequestValidationError(
            "$.deadline: must carry a time zone offset (rule 'format')"
        )
    if deadline.timestamp() > now + spec.max_deadline:
        # Well formed, but more than this provider promises: 422, not 400.
        raise UnprocessableEntity(
            "$.deadline: is later than this provider's maximum_deadline "
            "(rule 'maximum_deadline')"
        )
    return deadline.astimezone(UTC)


def run(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    caller = cached_caller(spec, req) or (yield from authenticate(spec, req))
    if not spec.runnable.everyone:
        yield from require(spec.runnable, caller)
    document = yield from _read_document(spec, req)
    spec.validate(document)
    now = time.time()
    deadline = _deadline(spec, document.get("deadline"), now)
    request = ActionRequest(
        action_id=new_action_id(),
        request_id=document["request_id"],
        body=document["body"],
        label=document.get("label"),
        monitor_by=tuple(document.get("monitor_by", ())),
        manage_by=tuple(document.get("manage_by", ())),
        allowed_clients=(
            tuple(document["allowed_clients"])
            if "allowed_clients" in document
            else None
        ),
        deadline=deadline,
        release_after=document.get("release_after") or spec.release_after,
    )
    fingerprint = hashlib.sha256(
        orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    give_up = time.monotonic() + spec.pending_wait
    pause = 0.005
    while True:
        claim = (
            caller.identity_urn,
            request.request_id,
            fingerprint,
            request.action_id,
            now,
            spec.lease,
        )
        # PERF: a local store answers in place, without an effect round trip.
        reservation: Reservation = (
            (yield Blocking(spec.store.reserve, *claim))
            if spec.store.io_bound
            else spec.store.reserve(*claim)
        )
        if reservation.outcome == "new":
            break
        if reservation.stored is not None:  # the same request, finished before
            req.context.action_id = reservation.stored.action_id
            return 200, reservation.stored.public
        if reservation.outcome == "conflict":
            raise Conflict(
                "This request_id was already used by you for a different request."
            )
        if time.monotonic() > give_up:
            raise Conflict(
                "An identical request is still being processed; retry later."
            )
        yield Sleep(pause)
        pause = min(pause * 2, 0.1)
        now = time.time()

    action = Action(
        action_id=request.action_id,
        status="ACTIVE",
        creator_id=caller.identity_urn,
        request_id=request.request_id,
        body=request.body,
        label=request.label,
        monitor_by=list(request.monitor_by),
        manage_by=list(request.manage_by),
        start_time=isoformat(now),
        release_after=request.release_after,
        deadline=None if deadline is None else deadline.isoformat(),
    )
    jobs = spec.jobs
    try:
        if "run" in spec.handlers:
            try:
                result = yield spec.handlers["run"](request, caller)
                if jobs is not None and isinstance(result, Mapping):
                    action.details = dict(result)  # the job's first details
                else:
                    apply(action, result, empty_is_success=jobs is None)
            except ActionFailed as failed:
                fail(action, failed)
        if spec.synchronous and action.status not in TERMINAL:
            raise TypeError(
                "a synchronous provider's run handler must finish the action, "
                f"but it answered {action.status}"
            )
        if jobs is not None and action.status not in TERMINAL:
            # Enqueued before the action is stored: nothing accepted is lost.
            yield spec.store_effect(jobs.admit, action, caller, now)
        else:
            jobs = None
    except BaseException:
        # Free the request key so that a retry of the same request can run.
        yield spec.store_effect(spec.store.abandon, request.action_id)
        raise
    stored = Stored.of(action)
    done = (stored, action, expiry(action))
    if spec.store.io_bound:
        yield Blocking(spec.store.finish, *done)
    else:
        spec.store.finish(*done)
    req.context.action_id = action.action_id
    if jobs is not None:
        jobs.wake()
    if now >= spec.housekeeping.next_purge:
        spec.housekeeping.next_purge = now + spec.purge_interval
        yield spec.store_effect(spec.store.purge, now)
    return 202, stored.public
