"""The PostgreSQL store's URL: where the database is, and aptools' own settings.

``postgresql://user:password@host:5432/dbname?schema=aptools&pool_max=20``
(``postgres://`` is the same). The query parameters below are aptools'; any
other is handed to libpq unchanged (``sslmode=require``, ``application_name``).

============================ ========= ====================================
parameter                    default   meaning
============================ ========= ====================================
``schema``                   public    schema holding the tables (not
                                       ``pg_*`` or ``information_schema``)
``pool_min`` / ``pool_max``  1 / 10    connections each process keeps
``pool_timeout``             3         seconds a call waits for a connection
``connect_timeout``          3         seconds to open a connection
``statement_timeout``        5         seconds one statement may take
============================ ========= ====================================

A call that cannot get a connection or an answer within these bounds fails
with :class:`aptools.StoreUnavailable` (503), never hangs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from aptools.store.registry import redact

__all__ = ["SCHEMES", "Settings"]

SCHEMES = ("postgresql", "postgres")

# Schema names are formatted into statements, so only plain identifiers pass.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# PostgreSQL's own schemas (with every pg_* name, which it reserves).
_RESERVED = frozenset({"information_schema"})


@dataclass(frozen=True, slots=True)
class Settings:
    """A parsed store URL. ``conninfo`` keeps the password: never log it."""

    conninfo: str
    schema: str = "public"
    pool_min: int = 1
    pool_max: int = 10
    pool_timeout: float = 3.0
    connect_timeout: float = 3.0
    statement_timeout: float = 5.0

    def scrub(self, exc: BaseException) -> str:
        """The first line of ``exc``'s message, without the password."""
        text = str(exc).strip().split("\n", 1)[0]
        password = urlsplit(self.conninfo).password
        return text.replace(password, "***") if password else text

    @classmethod
    def parse(cls, url: str) -> Settings:
        """Read a store URL; :class:`ValueError` (password redacted) if bad."""
        shown = redact(url)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError(f"bad PostgreSQL store URL {shown}") from None
        if parts.scheme not in SCHEMES:
            raise ValueError(
                f"bad PostgreSQL store URL {shown}: use postgresql://user@host/dbname"
            )
        ours: dict[str, str] = {}
        rest: list[tuple[str, str]] = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in _NUMBERS or name == "schema":
                ours[name] = value
            else:
                rest.append((name, value))
        values: dict[str, object] = {}
        for name, value in ours.items():
            if name == "schema":
                continue
            kind = _NUMBERS[name]
            try:
                number = kind(value)
            except ValueError:
                raise ValueError(
                    f"bad PostgreSQL store URL {shown}: {name} must be a number"
                ) from None
            if not 0 < number < math.inf:
                raise ValueError(
                    f"bad PostgreSQL store URL {shown}: {name} must be positive"
                )
            values[name] = number
        schema = ours.get("schema")
        if schema is not None and not schema:
            raise ValueError(
                f"bad PostgreSQL store URL {shown}: schema= is empty (leave it "
                "out for public)"
            )
        conninfo = urlunsplit(parts._replace(query=urlencode(rest)))
        _check_conninfo(conninfo, shown, parts.password)
        settings = cls(
            conninfo=conninfo,
            schema=schema or "public",
            **values,  # type: ignore[arg-type]
        )
        if not _IDENTIFIER.fullmatch(settings.schema):
            raise ValueError(
                f"bad PostgreSQL store URL {shown}: schema must be a lower-case "
                "identifier (letters, digits, _)"
            )
        if settings.schema in _RESERVED or settings.schema.startswith("pg_"):
            raise ValueError(
                f"bad PostgreSQL store URL {shown}: schema {settings.schema!r} is "
                "PostgreSQL's own (pg_*, information_schema); name one for aptools"
            )
        if settings.pool_min > settings.pool_max:
            raise ValueError(
                f"bad PostgreSQL store URL {shown}: pool_min exceeds pool_max"
            )
        return settings


def _check_conninfo(conninfo: str, shown: str, password: str | None) -> None:
    """:class:`ValueError` naming what libpq cannot read in ``conninfo`` (a
    bad percent-escape, an unknown parameter), the password never shown."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(conninfo)
    except Error as exc:
        reason = str(exc).strip().split("\n", 1)[0]
        for secret in filter(None, {password, unquote(password or "")}):
            reason = reason.replace(secret, "***")
        raise ValueError(f"bad PostgreSQL store URL {shown}: {reason}") from None


_NUMBERS: dict[str, type[int] | type[float]] = {
    "pool_min": int,
    "pool_max": int,
    "pool_timeout": float,
    "connect_timeout": float,
    "statement_timeout": float,
}
