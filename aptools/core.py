"""The protocol, written once: every operation of the Action Provider Interface.

Operations are generators over effects (see :mod:`aptools.effects`); they never
touch a socket, a thread or an event loop themselves. :class:`Spec` is what a
:class:`~aptools.Provider` compiles to: everything a request needs that could be
worked out before the first request.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import falcon
import orjson

from aptools.auth import GROUP_URN, Authenticator, Caller
from aptools.effects import Authenticate, Blocking, Effect, Op, ReadBody, Sleep
from aptools.errors import (
    ActionFailed,
    AuthServiceError,
    BadRequest,
    Conflict,
    Forbidden,
    InternalError,
    NotFound,
    PayloadTooLarge,
    RequestValidationError,
    Unauthorized,
    UnprocessableEntity,
)
from aptools.models import (
    FAILED,
    STATUSES,
    SUCCEEDED,
    TERMINAL,
    Action,
    ActionRequest,
    ActionStatus,
    EnumerateQuery,
    LogEntry,
    LogPage,
    LogQuery,
    isoformat,
    parse_duration,
)
from aptools.store import Reservation, Store, Stored

log = logging.getLogger("aptools")

Request = Any  # falcon.Request or falcon.asgi.Request: the same reading API
Reply = tuple[int, bytes]

MONITOR: Final = ("monitor_by",)
MANAGE: Final = ("manage_by",)
ROLE_NAMES: Final = frozenset({"creator_id", "monitor_by", "manage_by"})
CANCELED: Final = "Canceled"
_UNKNOWN: Final = "No such action, or it is not visible to you."


@dataclass(slots=True, frozen=True)
class Access:
    """A provider-level principal list, split for quick checks."""

    everyone: bool
    identities: frozenset[str]
    groups: frozenset[str]

    @classmethod
    def of(cls, principals: Iterable[str], everyone_word: str) -> Access:
        items = frozenset(principals)
        return cls(
            everyone=everyone_word in items,
            identities=frozenset(p for p in items if not p.startswith(GROUP_URN)),
            groups=frozenset(p for p in items if p.startswith(GROUP_URN)),
        )


@dataclass(slots=True, frozen=True)
class Handler:
    """A registered function and how to call it."""

    fn: Callable[..., Any]
    effect: Callable[..., Effect]

    def __call__(self, *args: Any) -> Effect:
        return self.effect(self.fn, *args)


@dataclass(slots=True)
class Housekeeping:
    next_purge: float = 0.0


@dataclass(slots=True, frozen=True, kw_only=True)
class Spec:
    """A provider compiled for serving; shared by the WSGI and ASGI apps."""

    description: bytes
    openapi: bytes
    visible: Access
    runnable: Access
    auth: Authenticator
    store: Store
    store_effect: Callable[..., Effect]
    validate: Callable[[Any], Any]
    handlers: Mapping[str, Handler]
    synchronous: bool
    max_body: int
    release_after: str
    max_deadline: float
    lease: float = 300.0
    pending_wait: float = 30.0
    purge_interval: float = 60.0
    access_log: bool = True
    hooks: tuple[Callable[..., None], ...] = ()
    housekeeping: Housekeeping = field(default_factory=Housekeeping)


def _json(doc: Any) -> bytes:
    return orjson.dumps(doc)


# -- authentication and authorization ------------------------------------------


def _bearer(req: Request) -> str:
    header: str | None = req.get_header("Authorization")
    if not header:
        raise Unauthorized("An Authorization: Bearer <token> header is required.")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
    return token


def authenticate(spec: Spec, req: Request) -> Op[Caller]:
    """The caller of ``req``: from the cache, else introspected."""
    token = _bearer(req)
    key = Authenticator.key(token)
    caller = spec.auth.cached(key)
    if caller is None:
        caller = yield Authenticate(spec.auth, key, token)
    req.context.caller = caller
    return caller


def cached_caller(spec: Spec, req: Request) -> Caller | None:
    """The caller of ``req`` if its token is cached.

    PERF: hot operations try this before ``yield from authenticate(...)``,
    which costs a generator even when nothing needs to be awaited.
    """
    caller = spec.auth.cached(Authenticator.key(_bearer(req)))
    req.context.caller = caller
    return caller


def _in_groups(caller: Caller, groups: Collection[str]) -> Op[bool]:
    mine: frozenset[str] = yield Blocking(caller.groups)
    return not mine.isdisjoint(groups)


def require(access: Access, caller: Caller) -> Op[None]:
    """403 unless the caller is on a provider-level list."""
    if access.everyone or not caller.identities.isdisjoint(access.identities):
        return
    if access.groups and (yield from _in_groups(caller, access.groups)):
        return
    raise Forbidden("You are not allowed to do this at this provider.")


def _may(action: Action, caller: Caller, roles: tuple[str, ...]) -> Op[bool]:
    if action.creator_id in caller.identities:
        return True
    principals = [p for role in roles for p in getattr(action, role)]
    if not caller.identities.isdisjoint(principals):
        return True
    groups = [p for p in principals if p.startswith(GROUP_URN)]
    if not groups:
        return False
    try:
        return (yield from _in_groups(caller, groups))
    except AuthServiceError:
        # Fail closed, and answer as for an unknown action so that a Groups
        # outage does not reveal which actions exist.
        log.warning(
            "group membership of %s unknown; access to an action denied",
            caller.identity_urn,
        )
        return False


def load(
    spec: Spec, caller: Caller, action_id: str, roles: tuple[str, ...]
) -> Op[Stored]:
    """The stored action if the caller may act on it in ``roles``, else 404."""
    stored: Stored | None
    if spec.store.io_bound:
        stored = yield spec.store_effect(spec.store.get, action_id, time.time())
    else:
        # PERF: a local store answers in place, without an effect round trip.
        stored = spec.store.get(action_id, time.time())
    if stored is None:
        raise NotFound(_UNKNOWN)
    # PERF: the creator needs no decoding; others are checked on the full action.
    if stored.creator_id not in caller.identities and not (
        yield from _may(stored.action(), caller, roles)
    ):
        raise NotFound(_UNKNOWN)
    return stored


# -- handler results -----------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _retention(release_after: str) -> float:
    return parse_duration(release_after)


def _expiry(action: Action) -> float | None:
    if action.status not in TERMINAL:
        return None
    done = datetime.fromisoformat(action.completion_time or action.start_time)
    return done.timestamp() + _retention(action.release_after)


def save(spec: Spec, action: Action) -> Op[Stored]:
    """Store a changed, already stored action; 404 if it went meanwhile."""
    stored: Stored | None = yield spec.store_effect(
        spec.store.update,
        action.action_id,
        Stored.of(action),
        _expiry(action),
        time.time(),
    )
    if stored is None:
        raise NotFound(_UNKNOWN)
    return stored


def apply(action: Action, result: Any, *, empty_is_success: bool = False) -> Action:
    """Fold a handler's answer into the action (in place) and return it."""
    if result is None:
        if empty_is_success:
            action.status, action.details = SUCCEEDED, {}
    elif isinstance(result, ActionStatus):
        if result.status not in STATUSES:
            raise TypeError(f"handler returned unknown status {result.status!r}")
        action.status = result.status
        action.details = result.details
        action.display_status = result.display_status
        if result.state is not None:
            action.state = result.state
    elif isinstance(result, Action):
        if result is not action:
            action.status, action.details = result.status, result.details
            action.display_status, action.state = result.display_status, result.state
        if action.status not in STATUSES:
            raise TypeError(f"handler set unknown status {action.status!r}")
    elif isinstance(result, Mapping):
        action.status, action.details = SUCCEEDED, dict(result)
    else:
        raise TypeError(
            "a handler must return a dict (the details of a SUCCEEDED action), "
            f"an ActionStatus, an Action or None, not {type(result).__name__}"
        )
    _finish_fields(action)
    return action


def _fail(action: Action, failed: ActionFailed) -> Action:
    action.status, action.details = FAILED, failed.details
    action.display_status = failed.display_status
    _finish_fields(action)
    return action


def _finish_fields(action: Action) -> None:
    if action.display_status is not None and len(action.display_status) > 64:
        action.display_status = action.display_status[:64]
    if action.status in TERMINAL and action.completion_time is None:
        # Same-format UTC timestamps order as text: completion never precedes
        # the start, even if the clock stepped back.
        action.completion_time = max(isoformat(time.time()), action.start_time)


_entropy = threading.local()


def _fresh_entropy() -> None:
    _entropy.at = 4096


# A forked worker must not hand out its parent's unused randomness.
os.register_at_fork(after_in_child=_fresh_entropy)


def new_action_id() -> str:
    """A random (version 4) UUID as text, from the OS's random source.

    PERF: reads randomness 4 KiB at a time (one system call per 256 ids) and
    formats it by hand: several times faster than ``str(uuid.uuid4())``.
    """
    at: int = getattr(_entropy, "at", 4096)
    if at >= 4096:
        _entropy.pool, at = os.urandom(4096), 0
    _entropy.at = at + 16
    raw = _entropy.pool[at : at + 16]
    h = raw.hex()
    # The version (4) and variant (10xx) bits of RFC 4122.
    h = f"{h[:12]}4{h[13:16]}{'89ab'[raw[8] >> 6]}{h[17:]}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def refresh(spec: Spec, name: str, stored: Stored, caller: Caller) -> Op[Stored]:
    """Let handler ``name`` update a non-terminal action; store what changed."""
    action = stored.action()
    try:
        result = yield spec.handlers[name](action, caller)
        apply(action, result)
    except ActionFailed as failed:
        _fail(action, failed)
    if _json(action.to_doc()) == stored.doc:
        return stored
    return (yield from save(spec, action))


# -- operations ----------------------------------------------------------------


def introspect(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    if not spec.visible.everyone:
        caller = yield from authenticate(spec, req)
        yield from require(spec.visible, caller)
    return 200, spec.description


def openapi(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    """The provider's OpenAPI document, visible to whom the description is."""
    if not spec.visible.everyone:
        caller = yield from authenticate(spec, req)
        yield from require(spec.visible, caller)
    return 200, spec.openapi


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
            req.context.action_id = reservation.stored.action().action_id
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
            _fail(action, failed)
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
    done = (stored, action, _expiry(action))
    if spec.store.io_bound:
        yield Blocking(spec.store.finish, *done)
    else:
        spec.store.finish(*done)
    req.context.action_id = action.action_id
    if now >= spec.housekeeping.next_purge:
        spec.housekeeping.next_purge = now + spec.purge_interval
        yield spec.store_effect(spec.store.purge, now)
    return 202, stored.public


def status(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    caller = cached_caller(spec, req) or (yield from authenticate(spec, req))
    stored = yield from load(spec, caller, action_id, MONITOR)
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
    _finish_fields(action)
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
    return 200, _json(doc)


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
    visible = {a.action_id for a in found}
    before = {a.action_id: _json(a.to_doc()) for a in found}
    result = yield spec.handlers["enumerate"](
        EnumerateQuery(statuses=statuses, roles=roles, actions=found), caller
    )
    answer = []
    for item in result or ():
        if not isinstance(item, Action) or item.action_id not in visible:
            continue
        if _json(item.to_doc()) == before[item.action_id]:
            answer.append(_json(item.to_public()))
            continue
        _finish_fields(item)
        try:
            stored = yield from save(spec, item)
        except NotFound:
            continue
        answer.append(stored.public)
    # The stored documents are JSON already: join them rather than re-encode.
    return 200, b"[" + b",".join(answer) + b"]"


def options_root(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    return 204, b""
    yield  # a generator, like every operation


def crash_reply(req: falcon.Request, exc: BaseException) -> InternalError:
    """Log an exception that escaped a handler; the caller sees only a 500."""
    log.error(
        "unhandled error on %s %s",
        req.method,
        req.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return InternalError()
