"""The floor: bare Falcon on the same routes doing trivial work.

No authentication, no validation, no storage beyond a dict: the least any
framework on Falcon could spend on these requests.
"""

from __future__ import annotations

import itertools
from typing import Any

import falcon
import falcon.asgi
import orjson

from .common import INPUT_SCHEMA, PREFIX, SCOPE, TITLE

NAME = "floor"

DESCRIPTION = orjson.dumps(
    {
        "types": ["Action"],
        "api_version": "1.0",
        "globus_auth_scope": SCOPE,
        "title": TITLE,
        "input_schema": INPUT_SCHEMA,
    }
)
_ids = itertools.count()
_actions: dict[str, bytes] = {}


def _run(raw: bytes) -> bytes:
    doc = orjson.loads(raw)
    action_id = str(next(_ids))
    status = orjson.dumps(
        {
            "action_id": action_id,
            "status": "SUCCEEDED",
            "details": {"you_said": doc["body"]["input_string"]},
        }
    )
    _actions[action_id] = status
    return status


class _Root:
    def on_get(self, req: Any, resp: Any) -> None:
        resp.data = DESCRIPTION
        resp.content_type = "application/json"


class _Run:
    def on_post(self, req: Any, resp: Any) -> None:
        resp.data = _run(req.bounded_stream.read())
        resp.status = 202
        resp.content_type = "application/json"


class _Status:
    def on_get(self, req: Any, resp: Any, action_id: str) -> None:
        resp.data = _actions.get(action_id, b"{}")
        resp.content_type = "application/json"


class _AsyncRoot:
    async def on_get(self, req: Any, resp: Any) -> None:
        resp.data = DESCRIPTION
        resp.content_type = "application/json"


class _AsyncRun:
    async def on_post(self, req: Any, resp: Any) -> None:
        resp.data = _run(await req.stream.read())
        resp.status = 202
        resp.content_type = "application/json"


class _AsyncStatus:
    async def on_get(self, req: Any, resp: Any, action_id: str) -> None:
        resp.data = _actions.get(action_id, b"{}")
        resp.content_type = "application/json"


app = falcon.App()
app.req_options.strip_url_path_trailing_slash = True
app.add_route(PREFIX, _Root())
app.add_route(PREFIX + "/run", _Run())
app.add_route(PREFIX + "/{action_id}/status", _Status())

asgi = falcon.asgi.App()
asgi.req_options.strip_url_path_trailing_slash = True
asgi.add_route(PREFIX, _AsyncRoot())
asgi.add_route(PREFIX + "/run", _AsyncRun())
asgi.add_route(PREFIX + "/{action_id}/status", _AsyncStatus())
