"""The protocol's shared parts: the compiled :class:`Spec`, who the caller is
and what they may do, and how a handler's answer becomes an action.

:class:`Spec` is what a :class:`~aptools.Provider` compiles to: everything a
request needs that could be worked out before the first request. Like the
operations in :mod:`aptools.operations`, nothing here touches a socket, a
thread or an event loop: I/O is yielded as effects (:mod:`aptools.effects`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import falcon
import orjson

from aptools.auth import GROUP_URN, Authenticator, Caller
from aptools.effects import Authenticate, Blocking, Effect, Op
from aptools.errors import (
    ActionFailed,
    AuthServiceError,
    Forbidden,
    InternalError,
    NotFound,
    Unauthorized,
)
from aptools.models import (
    FAILED,
    STATUSES,
    SUCCEEDED,
    TERMINAL,
    Action,
    ActionStatus,
    isoformat,
    parse_duration,
    timestamp_of,
)
from aptools.store import Store, Stored

log = logging.getLogger("aptools")

Request = Any  # falcon.Request or falcon.asgi.Request: the same reading API
Reply = tuple[int, bytes]

MONITOR: Final = ("monitor_by",)
MANAGE: Final = ("manage_by",)
ROLE_NAMES: Final = frozenset({"creator_id", "monitor_by", "manage_by"})
CANCELED: Final = "Canceled"
UNKNOWN: Final = "No such action, or it is not visible to you."


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


def to_json(doc: Any) -> bytes:
    return orjson.dumps(doc)


# -- authentication and authorization ------------------------------------------


def _bearer(req: Request) -> str:
    header: str | None = req.get_header("Authorization")
    if not header:
        raise Unauthorized("An Authorization: Bearer <token> header is required.")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if (scheme != "Bearer" and scheme.lower() != "bearer") or not token:
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
    return (yield from permitted(caller, stored, roles))


def permitted(
    caller: Caller, stored: Stored | None, roles: tuple[str, ...]
) -> Op[Stored]:
    """``stored`` if the caller may act on it in ``roles``; 404 if not, or if
    there is no such action (the two answers are the same on purpose)."""
    if stored is None:
        raise NotFound(UNKNOWN)
    # PERF: the creator needs no decoding; others are checked on the full action.
    if stored.creator_id not in caller.identities and not (
        yield from _may(stored.action(), caller, roles)
    ):
        raise NotFound(UNKNOWN)
    return stored


# -- handler results -----------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _retention(release_after: str) -> float:
    return parse_duration(release_after)


def expiry(action: Action) -> float | None:
    if action.status not in TERMINAL:
        return None
    done = timestamp_of(action.completion_time or action.start_time)
    return done + _retention(action.release_after)


def save(spec: Spec, action: Action, fresh: Stored | None = None) -> Op[Stored]:
    """Store a changed, already stored action; 404 if it went meanwhile.

    ``fresh`` is ``Stored.of(action)`` when the caller has it already.
    """
    stored: Stored | None = yield spec.store_effect(
        spec.store.update,
        action.action_id,
        fresh or Stored.of(action),
        expiry(action),
        time.time(),
    )
    if stored is None:
        raise NotFound(UNKNOWN)
    return stored


def apply(action: Action, result: Any, *, empty_is_success: bool = False) -> Action:
    """Fold a handler's answer into the action (in place) and return it."""
    if type(result) is dict:  # PERF: the common answer, checked first
        action.status, action.details = SUCCEEDED, dict(result)
    elif result is None:
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
    finish_fields(action)
    return action


def fail(action: Action, failed: ActionFailed) -> Action:
    action.status, action.details = FAILED, failed.details
    action.display_status = failed.display_status
    finish_fields(action)
    return action


def finish_fields(action: Action) -> None:
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
        fail(action, failed)
    fresh = Stored.of(action)
    if fresh.same(stored):
        return stored
    return (yield from save(spec, action, fresh))


def crash_reply(req: falcon.Request, exc: BaseException) -> InternalError:
    """Log an exception that escaped a handler; the caller sees only a 500."""
    log.error(
        "unhandled error on %s %s",
        req.method,
        req.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return InternalError()
