"""The PostgreSQL store: one provider on any number of hosts.

Install with ``pip install 'aptools[postgresql]'`` (psycopg 3 and
psycopg_pool), then select it with a URL::

    APTOOLS_STORE=postgresql://user:password@db.example.org:5432/aptools

The URL's query parameters (schema, pool size, timeouts) are documented in
:mod:`aptools.store.postgresql.settings`.
"""

from __future__ import annotations

from aptools.store.postgresql.schema import VERSION, SchemaTooNew
from aptools.store.postgresql.settings import SCHEMES
from aptools.store.postgresql.store import PostgreSQLStore

__all__ = [
    "SCHEMES",
    "VERSION",
    "PostgreSQLStore",
    "SchemaTooNew",
    "open_postgresql",
]


def open_postgresql(url: str) -> PostgreSQLStore:
    """The store registry's factory for ``postgresql://`` and ``postgres://``.

    >>> open_postgresql("postgresql://aptools@db/aptools?schema=provider_a")
    """
    return PostgreSQLStore(url)
