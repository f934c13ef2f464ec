"""Query and path values, read by one rule for every route.

Every route declares its query parameters once, as :class:`Parameter` values
in :data:`aptools.protocol.routes.ROUTES`; the faces read them all with
:func:`read` before any operation runs, and the operation finds the results
in ``req.context.query`` (a mapping from parameter name to value). The same
declarations give the OpenAPI document's ``parameters``. A parameter a route
does not declare is ignored: nothing reads it.

The rule (``PROTOCOL.md``, "Query values"): a blank or absent value takes the
parameter's default; a parameter that takes one value may be given once;
numbers are ASCII digits only (``²`` and Arabic-Indic digits are not numbers
here, nor are signs or spaces); words (enums, booleans) match in any letter
case, spaces around them ignored; lists are comma-separated or repeated;
tokens (the log's ``marker``) are 1 to :data:`TOKEN_MOST` visible ASCII
characters. Anything else is a 400 naming the parameter, never quoting the
value.

The action id in a path (:func:`action_id`) is 1 to :data:`ACTION_ID_MOST`
visible ASCII characters; any other is answered 404, as an unknown action is,
before any store sees it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from aptools.errors import BadRequest, NotFound
from aptools.models import LogQuery
from aptools.protocol.spec import Request

__all__ = [
    "ACTION_ID_MOST",
    "NO_QUERY",
    "TOKEN_MOST",
    "Parameter",
    "action_id",
    "boolean",
    "flag",
    "integer",
    "log_query",
    "number",
    "read",
    "text_token",
    "token",
    "token_fits",
    "word_list",
    "words",
]

#: The longest log marker (``marker``, ``pagination_token``) taken, in
#: characters; a log handler's markers must fit the same rule.
TOKEN_MOST: Final = 512
#: The longest action id a path may hold, in characters (aptools makes
#: 36-character UUIDs).
ACTION_ID_MOST: Final = 128
#: What ``req.context.query`` holds on a route without query parameters.
NO_QUERY: Final[Mapping[str, Any]] = MappingProxyType({})

# ``str.isdigit`` and ``\d`` take every Unicode digit; the interface's
# numbers are ASCII. Nine digits at most: no giant integers to convert.
_ASCII_NUMBER: Final = re.compile(r"[0-9]{1,9}")
_TOKEN: Final = re.compile(rf"[\x21-\x7e]{{1,{TOKEN_MOST}}}")
_TOKEN_PATTERN: Final = rf"^( *|[!-~]{{1,{TOKEN_MOST}}})$"
_BOOLEANS: Final = {"true": True, "false": False}
_UNKNOWN: Final = "No such action, or it is not visible to you."


@dataclass(frozen=True, slots=True)
class Parameter:
    """One query parameter of a route: its rule and its OpenAPI entry.

    ``read(req, name)`` is the rule: the value (or the default) from the
    request, else :class:`~aptools.errors.BadRequest`. ``many``: the
    parameter takes a list (repeated or comma-separated); any other may be
    given once. Make one with :func:`number`, :func:`boolean`,
    :func:`word_list` or :func:`token`.
    """

    name: str
    read: Callable[[Request, str], Any]
    schema: Mapping[str, Any]
    description: str
    many: bool = False

    def openapi(self) -> dict[str, Any]:
        """The parameter's entry in an OpenAPI operation's ``parameters``."""
        return {
            "name": self.name,
            "in": "query",
            "description": self.description,
            "schema": dict(self.schema),
        }


def read(req: Request, parameters: Sequence[Parameter]) -> Mapping[str, Any]:
    """Every declared parameter's value, by name; 400 on the first bad one."""
    if not parameters:
        return NO_QUERY
    return {p.name: p.read(req, p.name) for p in parameters}


def action_id(value: str) -> str:
    """``value`` if it may be an action id, else 404 (as an unknown id).

    >>> action_id("0b7c2b36-8f5e-4d0a-9a53-2f4d25b1e6a1")
    '0b7c2b36-8f5e-4d0a-9a53-2f4d25b1e6a1'
    """
    # Visible ASCII (U+0021 to U+007E), 1 to ACTION_ID_MOST characters.
    # PERF: string methods, not a regular expression: a quarter fewer
    # instructions (callgrind: 2,200 against 2,900 a call).
    if not (
        0 < len(value) <= ACTION_ID_MOST
        and value.isascii()
        and value.isprintable()
        and " " not in value
    ):
        raise NotFound(_UNKNOWN)
    return value


# -- the rules ------------------------------------------------------------------


def _one(req: Request, name: str) -> str | None:
    """The value of a single-valued parameter, ``None`` if absent or blank."""
    raw = req.get_param_as_list(name)
    if not raw:
        return None
    given = [value for value in raw if value.strip()]
    if len(given) > 1:
        raise BadRequest(f"Query parameter {name!r} may be given only once.")
    return given[0] if given else None


def _values(req: Request, name: str) -> list[str]:
    """The non-blank items of a parameter, repeated or comma-separated."""
    raw = req.get_param_as_list(name) or ()
    return [item.strip() for value in raw for item in value.split(",") if item.strip()]


def integer(req: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` in ASCII digits, else 400.

    With ``integer(req, "limit", 10, 1, 1000)``: ``?limit=25`` gives 25,
    ``?limit=`` gives 10, ``?limit=²`` and ``?limit=0`` raise BadRequest.
    """
    raw = _one(req, name)
    if raw is None:
        return default
    if not _ASCII_NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadRequest(
            f"Query parameter {name!r} must be a whole number from {low} to "
            f"{high}, in ASCII digits."
        )
    return int(raw)


def flag(req: Request, name: str, default: bool = False) -> bool:
    """``true`` or ``false`` in any letter case; blank or absent: ``default``."""
    raw = _one(req, name)
    if raw is None:
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


def text_token(
    req: Request, name: str, what: str = "as a previous page gave it"
) -> str | None:
    """An opaque token: 1 to :data:`TOKEN_MOST` visible ASCII characters
    (``!`` to ``~``); blank or absent: ``None``; anything else 400, whose
    description ends with ``what`` the value should be."""
    raw = _one(req, name)
    if raw is None:
        return None
    if _TOKEN.fullmatch(raw) is None:
        raise BadRequest(
            f"Query parameter {name!r} must be 1 to {TOKEN_MOST} visible ASCII "
            f"characters, {what}."
        )
    return raw


def token_fits(value: str) -> bool:
    """Whether ``value`` is a token :func:`text_token` would take back."""
    return _TOKEN.fullmatch(value) is not None


# -- the declarations -----------------------------------------------------------


def number(name: str, default: int, low: int, high: int, description: str) -> Parameter:
    """A whole number from ``low`` to ``high`` (:func:`integer`)."""
    return Parameter(
        name,
        lambda req, n: integer(req, n, default, low, high),
        {"type": "integer", "minimum": low, "maximum": high, "default": default},
        description,
    )


def boolean(name: str, default: bool, description: str) -> Parameter:
    """``true`` or ``false`` in any letter case (:func:`flag`)."""
    return Parameter(
        name,
        lambda req, n: flag(req, n, default),
        {"type": "boolean", "default": default},
        description,
    )


def word_list(
    name: str, allowed: Collection[str], default: str, description: str
) -> Parameter:
    """A comma-separated list of ``allowed`` words in any letter case, read
    as a ``frozenset`` of their canonical spellings (:func:`words`)."""
    spelled = {word.lower(): word for word in allowed}
    return Parameter(
        name,
        lambda req, n: words(req, n, spelled, default),
        {"type": "string", "pattern": _listed(allowed)},
        description,
        many=True,
    )


def token(
    name: str, description: str, what: str = "as a previous page gave it"
) -> Parameter:
    """An opaque token, ``None`` when absent (:func:`text_token`; ``what``
    the value should be, for its error)."""
    return Parameter(
        name,
        lambda req, n: text_token(req, n, what),
        {"type": "string", "pattern": _TOKEN_PATTERN},
        description,
    )


def _listed(allowed: Collection[str]) -> str:
    """A pattern for a comma-separated list of ``allowed`` words in any
    letter case (ECMA 262 patterns have no flags), blanks and spaces allowed."""
    word = "|".join(
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in w)
        for w in sorted(allowed)
    )
    item = f" *({word})? *"
    return f"^{item}(,{item})*$"


def log_query(query: Mapping[str, Any]) -> LogQuery:
    """The log's :class:`~aptools.models.LogQuery` from its read parameters:
    ``limit``, ``marker`` (else ``pagination_token``) and ``reverse_order``."""
    return LogQuery(
        limit=query["limit"],
        marker=query["marker"] or query["pagination_token"],
        reverse_order=query["reverse_order"],
    )
