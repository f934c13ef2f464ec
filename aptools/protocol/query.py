"""Query string values, parsed by one rule for every operation.

The rule (``PROTOCOL.md``, "Query values"): a blank or absent value takes the
parameter's default; numbers are ASCII digits only (``²`` and Arabic-Indic
digits are not numbers here, nor are signs or spaces); words (enums,
booleans) match in any letter case, spaces around them ignored; lists are
comma-separated or repeated. Anything else is a 400 naming
the parameter, never quoting the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from aptools.errors import BadRequest
from aptools.models import LogQuery
from aptools.protocol.spec import Request
from aptools.vocabulary import ACTIVE, ROLES, STATUSES

__all__ = ["flag", "integer", "log_query", "roles_filter", "status_filter", "words"]

# ``str.isdigit`` and ``\d`` take every Unicode digit; the interface's
# numbers are ASCII. Nine digits at most: no giant integers to convert.
_ASCII_NUMBER: Final = re.compile(r"[0-9]{1,9}")
_BOOLEANS: Final = {"true": True, "false": False}
_STATUS_WORDS: Final = {s.lower(): s for s in STATUSES}
_ROLE_WORDS: Final = {r.lower(): r for r in ROLES}


def _values(req: Request, name: str) -> list[str]:
    """The non-blank items of a parameter, repeated or comma-separated."""
    raw = req.get_param_as_list(name) or ()
    return [item.strip() for value in raw for item in value.split(",") if item.strip()]


def integer(req: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` in ASCII digits, else 400.

    With ``integer(req, "limit", 10, 1, 1000)``: ``?limit=25`` gives 25,
    ``?limit=`` gives 10, ``?limit=²`` and ``?limit=0`` raise BadRequest.
    """
    raw = req.get_param(name)
    if raw is None or not raw.strip():
        return default
    if not _ASCII_NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadRequest(
            f"Query parameter {name!r} must be a whole number from {low} to "
            f"{high}, in ASCII digits."
        )
    return int(raw)


def flag(req: Request, name: str, default: bool = False) -> bool:
    """``true`` or ``false`` in any letter case; blank or absent: ``default``."""
    raw = req.get_param(name)
    if raw is None or not raw.strip():
        return default
    value = _BOOLEANS.get(raw.strip().lower())
    if value is None:
        raise BadRequest(f"Query parameter {name!r} must be true or false.")
    return value


def words(
    req: Request, name: str, allowed: Mapping[str, str], default: str
) -> frozenset[str]:
    """The words of a list parameter, each mapped from its lower-case form in
    ``allowed`` to its canonical spelling; blank or absent: ``{default}``."""
    listed = _values(req, name)
    if not listed:
        return frozenset((default,))
    found = [allowed.get(word.lower()) for word in listed]
    if None in found:
        raise BadRequest(
            f"Query parameter {name!r} takes a comma-separated list of "
            f"{sorted(allowed)} (in any letter case)."
        )
    return frozenset(word for word in found if word is not None)


def status_filter(req: Request) -> frozenset[str]:
    """enumerate's ``status``: upper-case status names; default ``ACTIVE``."""
    return words(req, "status", _STATUS_WORDS, ACTIVE)


def roles_filter(req: Request) -> frozenset[str]:
    """enumerate's ``roles``; default ``creator_id``."""
    return words(req, "roles", _ROLE_WORDS, "creator_id")


def log_query(req: Request) -> LogQuery:
    """log's ``limit`` (1..1000, default 10), ``marker`` (or
    ``pagination_token``) and ``reverse_order``."""
    marker = req.get_param("marker") or req.get_param("pagination_token") or None
    return LogQuery(
        limit=integer(req, "limit", 10, 1, 1000),
        marker=marker,
        reverse_order=flag(req, "reverse_order"),
    )
