"""status: an action's current state."""

from __future__ import annotations

import time

from aptools.auth import Caller
from aptools.protocol.access import (
    MONITOR,
    authenticate,
    cached_caller,
    load,
    permitted,
)
from aptools.protocol.effects import Op
from aptools.protocol.lifecycle import (
    refresh,
)
from aptools.protocol.spec import Reply, Request, Spec
from aptools.store import Stored
from aptools.vocabulary import TERMINAL


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
