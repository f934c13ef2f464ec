"""log: a page of an action's log entries."""

from __future__ import annotations

from typing import Any

from aptools.models import (
    LogEntry,
    LogPage,
)
from aptools.protocol.access import (
    MONITOR,
    authenticate,
    load,
)
from aptools.protocol.effects import Op
from aptools.protocol.query import TOKEN_MOST, log_query, token_fits
from aptools.protocol.spec import Reply, Request, Spec, to_json


def action_log(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    caller = yield from authenticate(spec, req)
    query = log_query(req.context.query)  # read by the route's parameters
    stored = yield from load(spec, caller, action_id, MONITOR)
    result = yield spec.handlers["log"](stored.action(), caller, query)
    page = (
        result if isinstance(result, LogPage) else LogPage(entries=list(result or ()))
    )
    entries = [LogEntry.public_of(e) for e in page.entries]
    doc: dict[str, Any] = {
        "entries": entries,
        "limit": query.limit,
        "has_next_page": page.has_next_page,
    }
    if page.marker is not None:
        if not isinstance(page.marker, str) or not token_fits(page.marker):
            raise TypeError(
                "a log handler's marker must be 1 to "
                f"{TOKEN_MOST} visible ASCII characters (the rule a request's "
                "marker is read by)"
            )
        doc["marker"] = page.marker
    return 200, to_json(doc)
