"""enumerate: the actions a caller may see, by status and role."""

from __future__ import annotations

import time

from aptools.errors import (
    NotFound,
)
from aptools.models import Action, EnumerateQuery
from aptools.protocol.access import (
    authenticate,
)
from aptools.protocol.effects import Blocking, Op
from aptools.protocol.lifecycle import (
    finish_fields,
    save,
)
from aptools.protocol.query import _words
from aptools.protocol.spec import Reply, Request, Spec
from aptools.store import Stored
from aptools.vocabulary import ROLES, STATUSES


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
    roles = _words(req, "roles", ROLES, "creator_id")
    mine: frozenset[str] = caller.identities
    if roles - {"creator_id"}:
        groups: frozenset[str] = yield Blocking(caller.groups)
        mine = mine | groups
    principals = {
        role: mine if role != "creator_id" else caller.identities for role in roles
    }
    found = yield from spec.store_call(
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
