"""The same-I/O floor: bare Falcon doing the SQLite statements aptools does.

Per request, what aptools' SQLite store sends and nothing more: ``run`` looks
for the request key (creator, ``request_id``, namespace) and inserts the
action's row (its public document and its whole record, one statement in
autocommit); ``status`` reads the row back. Same tables and indexes, same
pragmas (WAL, ``synchronous=NORMAL``), a connection per thread. No
authentication, no validation, no idempotency lock: the least a provider
storing its actions in SQLite could spend.

Its file is the one ``BENCH_SQLITE`` or else ``APTOOLS_STORE`` (a
``sqlite:///`` URL) names, with ``.floor`` added. ``asgi`` runs the
statements on the event loop, or in a worker thread with
``BENCH_FLOOR_PLACEMENT=thread`` (as aptools runs a store's calls for a
``def`` handler); ``asgi_thread`` always in a thread.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import falcon
import falcon.asgi
import orjson

from .common import PREFIX
from .floor import DESCRIPTION

NAME = "floor-sqlite"
NAMESPACE = "https://auth.globus.org/scopes/aptools-bench/action_all /skeleton"
CREATOR = "urn:globus:auth:identity:00000000-0000-0000-0000-00000000beef"

# The store's schema (version 1), as aptools creates it.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS aptools_actions (
        action_id   TEXT PRIMARY KEY,
        namespace   TEXT,
        creator_id  TEXT NOT NULL,
        request_id  TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        reserved_at REAL NOT NULL,
        pending     INTEGER NOT NULL DEFAULT 1,
        status      TEXT NOT NULL DEFAULT '',
        expires_at  REAL,
        public      BLOB,
        doc         BLOB,
        UNIQUE (creator_id, request_id, namespace)
    )""",
    "CREATE INDEX IF NOT EXISTS aptools_actions_expiry"
    " ON aptools_actions (expires_at) WHERE expires_at IS NOT NULL",
)
_MINE = "(namespace = ? OR namespace IS NULL)"
_LIVE = "pending = 0 AND (expires_at IS NULL OR expires_at > ?)"
_FIND = (
    "SELECT action_id, fingerprint, pending, expires_at, status, creator_id,"
    f" public, doc FROM aptools_actions WHERE creator_id = ? AND request_id = ?"
    f" AND {_MINE}"
)
_INSERT = (
    "INSERT INTO aptools_actions (action_id, namespace, creator_id, request_id,"
    " fingerprint, reserved_at, pending, status, expires_at, public, doc)"
    " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
)
_GET = (
    "SELECT action_id, status, creator_id, public, doc FROM aptools_actions"
    f" WHERE action_id = ? AND {_MINE} AND {_LIVE}"
)
_THIRTY_DAYS = 30 * 86400.0


def _path() -> str:
    url = os.environ.get("BENCH_SQLITE") or os.environ.get("APTOOLS_STORE", "")
    if not url.startswith("sqlite:///"):
        raise SystemExit("floor-sqlite: needs a sqlite:/// URL in BENCH_SQLITE")
    return url.removeprefix("sqlite:///") + ".floor"


class _Database:
    """One connection per thread, opened as aptools opens its own."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        db = self.connection()
        db.execute("PRAGMA journal_mode=WAL")
        for statement in _SCHEMA:
            db.execute(statement)

    def connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            self._local.db = db
        return db

    def run(self, raw: bytes) -> tuple[int, bytes]:
        doc = orjson.loads(raw)
        request_id = doc["request_id"]
        db = self.connection()
        row = db.execute(_FIND, (CREATOR, request_id, NAMESPACE)).fetchone()
        if row is not None:
            return 200, row[6]
        action_id = str(uuid.uuid4())
        now = time.time()
        public = orjson.dumps(
            {
                "action_id": action_id,
                "status": "SUCCEEDED",
                "creator_id": CREATOR,
                "details": {"you_said": doc["body"]["input_string"]},
            }
        )
        record = orjson.dumps({"request_id": request_id, "body": doc["body"]})
        db.execute(
            _INSERT,
            (
                action_id,
                NAMESPACE,
                CREATOR,
                request_id,
                "fingerprint-of-the-request",
                now,
                "SUCCEEDED",
                now + _THIRTY_DAYS,
                public,
                record,
            ),
        )
        return 202, public

    def status(self, action_id: str) -> bytes | None:
        row = (
            self.connection()
            .execute(_GET, (action_id, NAMESPACE, time.time()))
            .fetchone()
        )
        return None if row is None else bytes(row[3])


_db: _Database | None = None
_made = threading.Lock()


def database() -> _Database:
    global _db
    if _db is None:
        with _made:
            if _db is None:
                _db = _Database(_path())
    return _db


def _answer(resp: Any, found: bytes | None, status: int = 200) -> None:
    if found is None:
        resp.status = 404
        resp.data = b'{"code": "ActionNotFound"}'
    else:
        resp.status = status
        resp.data = found
    resp.content_type = "application/json"


class _Root:
    def on_get(self, req: Any, resp: Any) -> None:
        resp.data = DESCRIPTION
        resp.content_type = "application/json"


class _Run:
    def on_post(self, req: Any, resp: Any) -> None:
        status, data = database().run(req.bounded_stream.read())
        _answer(resp, data, status)


class _Status:
    def on_get(self, req: Any, resp: Any, action_id: str) -> None:
        _answer(resp, database().status(action_id))


_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="floor-sqlite")


class _AsyncRoot:
    async def on_get(self, req: Any, resp: Any) -> None:
        resp.data = DESCRIPTION
        resp.content_type = "application/json"


class _AsyncRun:
    def __init__(self, threaded: bool) -> None:
        self.threaded = threaded

    async def on_post(self, req: Any, resp: Any) -> None:
        raw = await req.stream.read()
        if self.threaded:
            loop = asyncio.get_running_loop()
            status, data = await loop.run_in_executor(_pool, database().run, raw)
        else:
            status, data = database().run(raw)
        _answer(resp, data, status)


class _AsyncStatus:
    def __init__(self, threaded: bool) -> None:
        self.threaded = threaded

    async def on_get(self, req: Any, resp: Any, action_id: str) -> None:
        if self.threaded:
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(_pool, database().status, action_id)
        else:
            found = database().status(action_id)
        _answer(resp, found)


def _asgi(threaded: bool) -> falcon.asgi.App:
    made = falcon.asgi.App()
    made.req_options.strip_url_path_trailing_slash = True
    made.add_route(PREFIX, _AsyncRoot())
    made.add_route(PREFIX + "/run", _AsyncRun(threaded))
    made.add_route(PREFIX + "/{action_id}/status", _AsyncStatus(threaded))
    return made


app = falcon.App()
app.req_options.strip_url_path_trailing_slash = True
app.add_route(PREFIX, _Root())
app.add_route(PREFIX + "/run", _Run())
app.add_route(PREFIX + "/{action_id}/status", _Status())

asgi = _asgi(os.environ.get("BENCH_FLOOR_PLACEMENT") == "thread")
asgi_thread = _asgi(True)
