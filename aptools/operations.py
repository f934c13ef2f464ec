"""The operations of the Action Provider Interface, each written once.

Every operation is a generator over effects taking ``(spec, req, action_id)``
and returning ``(status, body)``; :mod:`aptools.apps` drives them under WSGI
and ASGI.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import orjson

from aptools.auth import Caller
from aptools.core import (
    CANCELED,
    MANAGE,
    MONITOR,
    ROLE_NAMES,
    Reply,
    Request,
    Spec,
    apply,
    authenticate,
    cached_caller,
    expiry,
    fail,
    finish_fields,
    load,
    new_action_id,
    permitted,
    refresh,
    require,
    save,
    to_json,
)
from aptools.effects import Blocking, Op, ReadBody, Sleep
from aptools.errors import (
    ActionFailed,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    RequestValidationError,
    UnprocessableEntity,
)
from aptools.models import (
    FAILED,
    STATUSES,
    TERMINAL,
    Action,
    ActionRequest,
    EnumerateQuery,
    LogEntry,
    LogPage,
    LogQuery,
    isoformat,
)
from aptools.store import Reservation, Stored


def _described(spec: Spec, req: Request, document: bytes) -> Op[Reply]:
    """A document about the provider, for whom ``visible_to`` allows."""
    if not spec.visible.everyone:
        caller = yield from authenticate(spec, req)
        yield from require(spec.visible, caller)
    return 200, document


def introspect(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    return (yield from _described(spec, req, spec.description))


def openapi(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    """The provider's OpenAPI document, visible to whom the description is."""
    return (yield from _described(spec, req, spec.openapi))


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
    try:
        try:
            result = yield spec.handlers["run"](request, caller)
            apply(action, result, empty_is_success=True)
        except ActionFailed as failed:
            fail(action, failed)
        if spec.synchronous and action.status not in TERMINAL:
            raise TypeError(
                "a synchronous provider's run handler must finish the action, "
                f"but it answered {action.status}"
            )
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
    if now >= spec.housekeeping.next_purge:
        spec.housekeeping.next_purge = now + spec.purge_interval
        yield spec.store_effect(spec.store.purge, now)
    return 202, stored.public


def status(spec: Spec, req: Request, action_id: str) -> Op[Reply] | Reply:
    # PERF: a known caller polling their own stored action, the most frequent
    # request of all, is answered in place: no generator, no driver.
    if not spec.store.io_bound:
        caller = cached_caller(spec, req)
        if caller is not None:
            stored = spec.store.get(action_id, time.time())
            if (
                stored is not None
                and stored.creator_id in caller.identities
                and (stored.status in TERMINAL or "status" not in spec.handlers)
            ):
                return 200, stored.public
            return _status(spec, req, action_id, caller, stored)
    return _status(spec, req, action_id)


def _status(
    spec: Spec,
    req: Request,
    action_id: str,
    caller: Caller | None = None,
    read: Stored | None = None,
) -> Op[Reply]:
    """Status the long way; ``caller`` and the action ``read`` for it, if
    the short way got that far."""
    if caller is None:
        caller = yield from authenticate(spec, req)
        stored = yield from load(spec, caller, action_id, MONITOR)
    else:
        stored = yield from permitted(caller, read, MONITOR)
    if "status" in spec.handlers and stored.status not in TERMINAL:
        stored = yield from refresh(spec, "status", stored, caller)
    return 200, stored.public


def cancel(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    caller = yield from authenticate(spec, req)
    stored = yield from load(spec, caller, action_id, MANAGE)
    if stored.status in TERMINAL:
        return 200, stored.public
    if "cancel" in spec.handlers:
        stored = yield from refresh(spec, "cancel", stored, caller)
        return 200, stored.public
    action = stored.action()
    action.status, action.display_status = FAILED, CANCELED
    finish_fields(action)
    stored = yield from save(spec, action)
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
    yield spec.store_effect(spec.store.delete, action_id)
    return 200, stored.public


def resume(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    caller = yield from authenticate(spec, req)
    stored = yield from load(spec, caller, action_id, MANAGE)
    if stored.status not in TERMINAL:
        stored = yield from refresh(spec, "resume", stored, caller)
    return 200, stored.public


def _flag(req: Request, name: str) -> bool:
    value = req.get_param(name)
    if value is None:
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise BadRequest(f"Query parameter {name!r} must be true or false.")


def log_query(req: Request) -> LogQuery:
    raw = req.get_param("limit")
    limit = 10
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise BadRequest(
                "Query parameter 'limit' must be an integer from 1 to 1000."
            )
        limit = int(raw)
    marker = req.get_param("marker") or req.get_param("pagination_token")
    return LogQuery(
        limit=limit, marker=marker, reverse_order=_flag(req, "reverse_order")
    )


def action_log(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    caller = yield from authenticate(spec, req)
    query = log_query(req)
    stored = yield from load(spec, caller, action_id, MONITOR)
    result = yield spec.handlers["log"](stored.action(), caller, query)
    page = (
        result if isinstance(result, LogPage) else LogPage(entries=list(result or ()))
    )
    entries = [
        e.to_public() if isinstance(e, LogEntry) else dict(e) for e in page.entries
    ]
    doc: dict[str, Any] = {
        "entries": entries,
        "limit": query.limit,
        "has_next_page": page.has_next_page,
    }
    if page.marker is not None:
        doc["marker"] = page.marker
    return 200, to_json(doc)


def _words(
    req: Request, name: str, allowed: Collection[str], default: str
) -> frozenset[str]:
    raw = req.get_param_as_list(name) or [default]
    listed = [word for item in raw for word in item.split(",")]
    words = frozenset(listed)
    if not listed or any(word not in allowed for word in listed):
        raise BadRequest(
            f"Query parameter {name!r} takes values from {sorted(allowed)}."
        )
    return words


def enumerate_actions(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    caller = yield from authenticate(spec, req)
    statuses = frozenset(
        w.upper()
        for w in _words(
            req,
            "status",
            {s.lower() for s in STATUSES} | STATUSES,
            "active",
        )
    )
    roles = _words(req, "roles", ROLE_NAMES, "creator_id")
    mine: frozenset[str] = caller.identities
    if roles - {"creator_id"}:
        groups: frozenset[str] = yield Blocking(caller.groups)
        mine = mine | groups
    principals = {
        role: mine if role != "creator_id" else caller.identities for role in roles
    }
    found: list[Action] = yield spec.store_effect(
        spec.store.list, principals, statuses, time.time()
    )
    before = {a.action_id: Stored.of(a) for a in found}
    result = yield spec.handlers["enumerate"](
        EnumerateQuery(statuses=statuses, roles=roles, actions=found), caller
    )
    answer = []
    for item in result or ():
        if not isinstance(item, Action) or item.action_id not in before:
            continue
        finish_fields(item)
        fresh = Stored.of(item)
        if fresh.same(before[item.action_id]):
            answer.append(fresh.public)
            continue
        try:
            stored = yield from save(spec, item, fresh)
        except NotFound:
            continue
        answer.append(stored.public)
    # The stored documents are JSON already: join them rather than re-encode.
    return 200, b"[" + b",".join(answer) + b"]"


def options_root(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    return 204, b""
    yield  # a generator, like every operation
