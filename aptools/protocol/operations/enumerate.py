"""enumerate: the actions a caller may see, by status and role."""

from __future__ import annotations

import time

from aptools.actions import finish_fields
from aptools.errors import (
    NotFound,
)
from aptools.jobs.fairshare import current, waits
from aptools.models import Action, EnumerateQuery
from aptools.protocol.access import (
    authenticate,
)
from aptools.protocol.effects import Blocking, Op
from aptools.protocol.lifecycle import (
    refresh,
    save,
    settle,
)
from aptools.protocol.spec import Reply, Request, Spec
from aptools.store import Stored
from aptools.vocabulary import TERMINAL


def enumerate_actions(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    """The caller's actions in the statuses and roles asked for.

    Served from the store for every provider; an ``enumerate`` handler may
    refine the list. Whatever is answered is in a status asked for, also
    after a handler or a status refresh changed it.
    """
    caller = yield from authenticate(spec, req)
    # Read by the route's declared parameters (aptools.protocol.query).
    statuses: frozenset[str] = req.context.query["status"]
    roles: frozenset[str] = req.context.query["roles"]
    mine: frozenset[str] = caller.identities
    if roles - {"creator_id"}:
        groups: frozenset[str] = yield Blocking(caller.groups)
        mine = mine | groups
    principals = {
        role: mine if role != "creator_id" else caller.identities for role in roles
    }
    found: list[Action] = yield from spec.store_call(
        spec.store.list, principals, statuses, time.time()
    )
    # Fair share: a waiting action's place, as its status would say it.
    jobs = spec.jobs if spec.jobs is not None and spec.jobs.per_caller else None
    if "enumerate" not in spec.handlers:
        # The store filtered by principal, role and status; a status handler
        # brings unfinished actions up to date, which may move them out.
        listed = []
        for action in found:
            stored = Stored.of(action)
            try:
                stored = yield from settle(spec, stored)
            except NotFound:
                continue
            if "status" in spec.handlers and stored.status not in TERMINAL:
                try:
                    stored = yield from refresh(spec, "status", stored, caller)
                except NotFound:
                    continue
            if jobs is not None and waits(jobs, stored):
                stored = yield from spec.store_call(current, jobs, stored)
            if stored.status in statuses:
                listed.append(stored.public)
        return 200, b"[" + b",".join(listed) + b"]"
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
        if not fresh.same(before[item.action_id]):
            try:
                fresh = yield from save(spec, item, fresh)
            except NotFound:
                continue
        # A refresh may have moved the action out of the filter asked for.
        if jobs is not None and waits(jobs, fresh):
            fresh = yield from spec.store_call(current, jobs, fresh)
        if fresh.status in statuses:
            answer.append(fresh.public)
    # The stored documents are JSON already: join them rather than re-encode.
    return 200, b"[" + b",".join(answer) + b"]"
