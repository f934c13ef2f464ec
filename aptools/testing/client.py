"""A client that calls a provider as a named identity, in process or over HTTP."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson

from aptools.protocol.routes import find
from aptools.testing.fakeauth import FakeIdentity
from aptools.vocabulary import TERMINAL

if TYPE_CHECKING:
    from aptools.provider import Provider

__all__ = ["ProviderClient", "Reply"]

Who = FakeIdentity | str | None


@dataclass(slots=True)
class Reply:
    """One answer: status code, headers (lower-case names) and body."""

    status_code: int
    headers: dict[str, str]
    content: bytes = field(repr=False)

    @property
    def json(self) -> Any:
        """The body decoded as JSON, decoded anew at each read; ``None`` for
        an empty body (HEAD, OPTIONS).

        Its shape is the operation's answer: an action status ``dict``
        (``action_id``, ``status``, ``creator_id``, ``details``, ...) for run,
        status, cancel, release and resume; a ``list`` of those for
        enumerate; ``{"entries": [...], "limit": int, "has_next_page": bool}``
        (and ``"marker"`` when there is a next page) for log; and
        ``{"code": str, "description": str}`` for any error (4xx, 5xx).
        Raises ``orjson.JSONDecodeError`` (a ``ValueError``) when the body is
        not JSON.
        """
        return orjson.loads(self.content) if self.content else None

    @property
    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.content.decode("utf-8", "replace")


class ProviderClient:
    """Calls every operation of a provider as an identity of the fake Globus Auth.

    In process (no server)::

        client = ProviderClient(provider)              # or flavour="asgi"
        ran = client.run({"input_string": "hi"}, as_=alice)
        assert ran.status_code == 202
        client.status(ran.json["action_id"], as_=bob).status_code  # 404

    Over HTTP, against a running server::

        client = ProviderClient("http://127.0.0.1:8000/skeleton")

    ``as_`` takes a :class:`FakeIdentity` (its token is used) or a raw token.
    """

    def __init__(
        self,
        target: Provider | str,
        *,
        flavour: Literal["wsgi", "asgi"] = "wsgi",
        api: Literal["1.0", "1.1"] = "1.1",
    ) -> None:
        self.api = api
        self._ids = itertools.count(1)
        if isinstance(target, str):
            self.prefix = ""
            self._base = target.rstrip("/")
            self._sim: Any = None
        else:
            import falcon.testing

            app = target.wsgi() if flavour == "wsgi" else target.asgi()
            self._sim = falcon.testing.TestClient(app)
            self.prefix = target.prefix.rstrip("/")
            self._base = ""

    # -- the operations ---------------------------------------------------------

    def introspect(self, *, as_: Who = None) -> Reply:
        return self.request("GET", "/", as_)

    def run(
        self,
        body: Mapping[str, Any],
        *,
        as_: Who,
        request_id: str | None = None,
        **extra: Any,
    ) -> Reply:
        """Start an action; ``extra`` adds members such as ``label`` or
        ``monitor_by``. A fresh ``request_id`` is made unless given."""
        document = {
            "request_id": request_id or f"test-{time.time_ns()}-{next(self._ids)}",
            "body": dict(body),
            **extra,
        }
        return self.operation("run", None, as_, json=document)

    def status(self, action_id: str, *, as_: Who) -> Reply:
        return self.operation("status", action_id, as_)

    def cancel(self, action_id: str, *, as_: Who) -> Reply:
        return self.operation("cancel", action_id, as_)

    def release(self, action_id: str, *, as_: Who) -> Reply:
        return self.operation("release", action_id, as_)

    def resume(self, action_id: str, *, as_: Who) -> Reply:
        return self.operation("resume", action_id, as_)

    def log(self, action_id: str, *, as_: Who, **params: Any) -> Reply:
        """A page of the log; ``params``: ``limit`` (1 to 1000),
        ``marker`` (or ``pagination_token``: the ``marker`` of the previous
        page) and ``reverse_order`` (a bool)."""
        return self.operation("log", action_id, as_, params=params)

    def enumerate(
        self, *, as_: Who, status: str | None = None, roles: str | None = None
    ) -> Reply:
        params = {k: v for k, v in (("status", status), ("roles", roles)) if v}
        return self.operation("enumerate", None, as_, params=params)

    def operation(
        self, name: str, action_id: str | None, as_: Who = None, **kw: Any
    ) -> Reply:
        """Call operation ``name`` at its path in this client's API version
        (from the route table, :mod:`aptools.protocol.routes`)."""
        route = find(name, self.api)
        path = route.path
        if action_id is not None:
            path = path.replace("{action_id}", action_id)
        return self.request(route.method, path, as_, **kw)

    def wait(
        self, action_id: str, *, as_: Who, timeout: float = 30.0, every: float = 0.05
    ) -> Reply:
        """Poll status every ``every`` seconds until the action is SUCCEEDED
        or FAILED, and return that status :class:`Reply`; a status answer
        other than 200 (404, 401) is returned at once. An INACTIVE action is
        polled like an ACTIVE one. Raises ``TimeoutError`` after ``timeout``
        seconds."""
        give_up = time.monotonic() + timeout
        while True:
            reply = self.status(action_id, as_=as_)
            if reply.status_code != 200 or reply.json["status"] in TERMINAL:
                return reply
            if time.monotonic() > give_up:
                raise TimeoutError(f"action {action_id} still {reply.json['status']}")
            time.sleep(every)

    # -- plumbing -----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        as_: Who = None,
        *,
        json: Any = None,
        body: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Any request, relative to the provider's prefix."""
        sent = dict(headers or {})
        if as_ is not None:
            token = as_.token if isinstance(as_, FakeIdentity) else as_
            sent["Authorization"] = f"Bearer {token}"
        if json is not None:
            body = orjson.dumps(json)
            sent.setdefault("Content-Type", "application/json")
        query = {k: _text(v) for k, v in (params or {}).items()}
        if self._sim is not None:
            result = self._sim.simulate_request(
                method, self.prefix + path, headers=sent, body=body, params=query
            )
            return Reply(
                result.status_code,
                {k.lower(): v for k, v in result.headers.items()},
                result.content,
            )
        import requests

        answer = requests.request(
            method,
            self._base + path,
            headers=sent,
            data=body,
            params=query,
            timeout=60,
        )
        return Reply(
            answer.status_code,
            {k.lower(): v for k, v in answer.headers.items()},
            answer.content,
        )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
