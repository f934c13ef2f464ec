"""Who the caller is and what they may do: authentication and authorization
as operations (generators over effects)."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Final

from aptools.auth import Authenticator, Caller
from aptools.errors import (
    AuthServiceError,
    Forbidden,
    NotFound,
    Unauthorized,
)
from aptools.models import (
    Action,
)
from aptools.protocol.effects import Authenticate, Blocking, Op
from aptools.protocol.spec import Access, Request, Spec
from aptools.store import Stored
from aptools.vocabulary import GROUP_URN

log = logging.getLogger("aptools")


MONITOR: Final = ("monitor_by",)


MANAGE: Final = ("manage_by",)


UNKNOWN: Final = "No such action, or it is not visible to you."


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
    if (
        access.everyone
        or access.authenticated
        or not caller.identities.isdisjoint(access.identities)
    ):
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
    stored = yield from spec.store_call(spec.store.get, action_id, time.time())
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
