"""The SQLite backend (the default): one file in WAL mode, shared by the
processes of one host.

``store.py`` keeps the actions, ``jobs.py`` the job queue, ``schema.py``
every table of the file (one schema version for all) and its upgrades,
``claims.py`` the request keys held while a run's handler works, and
``introspections.py`` the token introspections the processes share.
"""

from __future__ import annotations

from aptools.store.sqlite.jobs import SQLiteJobQueue
from aptools.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteJobQueue", "SQLiteStore"]
