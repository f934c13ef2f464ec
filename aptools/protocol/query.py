"""Query string values, parsed by one rule for every operation."""

from __future__ import annotations

from collections.abc import Collection

from aptools.errors import (
    BadRequest,
)
from aptools.models import (
    LogQuery,
)
from aptools.protocol.spec import Request


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
