"""A fake Globus Auth + Groups server on loopback, for tests and local runs.

It speaks the parts of the real HTTP APIs that a provider uses — token
introspection, the dependent-token grant, and Groups' ``my_groups`` — so the
provider under test talks to it through the real globus-sdk::

    with FakeGlobusAuth(scope=provider.scope) as auth, auth.environment():
        alice = auth.identity("alice")
        app = provider.wsgi()
        # ... call the app with headers={"Authorization": f"Bearer {alice.token}"}
"""

from __future__ import annotations

import base64
import collections
import contextlib
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import orjson

__all__ = ["FakeGlobusAuth", "FakeIdentity"]

GROUPS_SCOPE: Final = (
    "urn:globus:auth:scope:groups.api.globus.org:view_my_groups_and_memberships"
)
DEFAULT_SCOPE: Final = "https://auth.globus.org/scopes/aptools-dev/action_all"


@dataclass(slots=True)
class FakeIdentity:
    """An identity known to the fake server, with a token for the provider."""

    id: str
    username: str
    token: str
    linked: list[str] = field(default_factory=list)

    @property
    def urn(self) -> str:
        return f"urn:globus:auth:identity:{self.id}"


@dataclass(slots=True)
class _Token:
    sub: str
    scopes: tuple[str, ...]
    active: bool
    exp: int
    client_id: str


class FakeGlobusAuth:
    """A Globus Auth + Groups stand-in serving HTTP on 127.0.0.1.

    - :meth:`identity` makes an identity with a token for ``scope``;
      :meth:`token` makes more tokens (other scopes, inactive, expiring).
    - :meth:`group` makes a group with members; :meth:`link` links identities.
    - :meth:`fail` makes every call answer an HTTP error, :meth:`hang` makes
      calls wait without answering, :meth:`recover` ends either.
    - :attr:`calls` counts requests by endpoint (``"introspect"``,
      ``"dependent_token"``, ``"my_groups"``).
    """

    def __init__(
        self,
        *,
        scope: str = DEFAULT_SCOPE,
        client_id: str | None = None,
        client_secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.scope = scope
        self.client_id = client_id or str(uuid.uuid4())
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.calls: collections.Counter[str] = collections.Counter()
        #: Seconds every call waits before answering, to mimic a distant service.
        self.latency = 0.0
        self._tokens: dict[str, _Token] = {}
        # refresh token -> (identity id, scope), from offline dependent grants
        self._refresh_tokens: dict[str, tuple[str, str]] = {}
        self._identities: dict[str, FakeIdentity] = {}
        self._groups: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._failure: int | None = None
        self._hanging = threading.Event()
        self._released = threading.Event()
        self._server = _Server((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> FakeGlobusAuth:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="fake-globus-auth", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self.recover()
        self._server.shutdown()
        self._server.server_close()
        self._thread = None

    def __enter__(self) -> FakeGlobusAuth:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The environment that points globus-sdk and aptools at this server."""
        return {
            "GLOBUS_SDK_SERVICE_URL_AUTH": self.url,
            "GLOBUS_SDK_SERVICE_URL_GROUPS": self.url,
            "APTOOLS_CLIENT_ID": self.client_id,
            "APTOOLS_CLIENT_SECRET": self.client_secret,
        }

    @contextlib.contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        """Set :meth:`env` in ``os.environ`` for the block, then restore it."""
        values = self.env()
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield values
        finally:
            for name, old in saved.items():
                if old is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = old

    # -- the directory ---------------------------------------------------------

    def identity(
        self,
        username: str,
        *,
        scopes: tuple[str, ...] | None = None,
        id: str | None = None,
        token: str | None = None,
    ) -> FakeIdentity:
        """A new identity, with a token carrying ``scopes`` (default: the scope).

        ``id`` and ``token`` may be fixed, e.g. to keep them across restarts.
        """
        ident = FakeIdentity(id=id or str(uuid.uuid4()), username=username, token="")
        with self._lock:
            self._identities[ident.id] = ident
        ident.token = self.token(ident, scopes=scopes, value=token)
        return ident

    def token(
        self,
        identity: FakeIdentity,
        *,
        scopes: tuple[str, ...] | None = None,
        active: bool = True,
        expires_in: int = 3600,
        value: str | None = None,
    ) -> str:
        """A new access token for ``identity`` (``value`` fixes its text)."""
        value = value or "fake-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[value] = _Token(
                sub=identity.id,
                scopes=scopes if scopes is not None else (self.scope,),
                active=active,
                exp=int(time.time()) + expires_in,
                client_id=self.client_id,
            )
        return value

    def revoke(self, token: str) -> None:
        """Make a token inactive."""
        with self._lock:
            self._tokens[token].active = False

    def link(self, primary: FakeIdentity, *others: FakeIdentity) -> None:
        """Link identities, so each appears in the others' identity sets."""
        with self._lock:
            everyone = [primary, *others]
            for ident in everyone:
                ident.linked = [o.id for o in everyone if o is not ident]

    def group(self, *members: FakeIdentity, id: str | None = None) -> str:
        """A new group of ``members``; returns its URN."""
        group_id = id or str(uuid.uuid4())
        with self._lock:
            self._groups[group_id] = {m.id for m in members}
        return f"urn:globus:groups:id:{group_id}"

    def add_member(self, group_urn: str, identity: FakeIdentity) -> None:
        with self._lock:
            self._groups[group_urn.rsplit(":", 1)[-1]].add(identity.id)

    # -- failure switches ---------------------------------------------------------

    def fail(self, status: int = 500) -> None:
        """Answer every call with HTTP ``status`` until :meth:`recover`."""
        self._failure = status

    def hang(self) -> None:
        """Accept calls but never answer them until :meth:`recover`."""
        self._released.clear()
        self._hanging.set()

    def recover(self) -> None:
        """Answer normally again."""
        self._failure = None
        self._hanging.clear()
        self._released.set()

    # -- request handling -----------------------------------------------------------

    def _respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any]:
        route = urlsplit(path).path.rstrip("/")
        name = {
            "/v2/oauth2/token/introspect": "introspect",
            "/v2/oauth2/token": "dependent_token",
            "/v2/groups/my_groups": "my_groups",
        }.get(route, "unknown")
        with self._lock:
            self.calls[name] += 1
        if self.latency:
            time.sleep(self.latency)
        if self._hanging.is_set():
            self._released.wait(timeout=60)
        if self._failure is not None:
            return self._failure, {"code": "Fake", "message": "failure switched on"}
        if name == "my_groups":
            return self._my_groups(headers)
        if name == "unknown" or method != "POST":
            return 404, {"code": "NotFound", "message": "unknown endpoint"}
        if not self._client_ok(headers.get("Authorization", "")):
            return 401, {
                "error": "invalid_client",
                "errors": [{"code": "UNAUTHORIZED"}],
            }
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if name == "introspect":
            return 200, self._introspect(form)
        return self._dependent(form)

    def _client_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value).decode()
        except ValueError:
            return False
        return decoded == f"{self.client_id}:{self.client_secret}"

    def _introspect(self, form: Mapping[str, str]) -> dict[str, Any]:
        with self._lock:
            info = self._tokens.get(form.get("token", ""))
            ident = self._identities.get(info.sub) if info else None
        if info is None or ident is None or not info.active or info.exp < time.time():
            return {"active": False}
        doc: dict[str, Any] = {
            "active": True,
            "scope": " ".join(info.scopes),
            "sub": info.sub,
            "username": ident.username,
            "client_id": info.client_id,
            "exp": info.exp,
            "iat": info.exp - 3600,
            "aud": [self.client_id],
            "token_type": "Bearer",
        }
        if "identity_set" in form.get("include", ""):
            doc["identity_set"] = [info.sub, *ident.linked]
        return doc

    def _refresh(self, form: Mapping[str, str]) -> tuple[int, Any]:
        with self._lock:
            held = self._refresh_tokens.get(form.get("refresh_token", ""))
            ident = None if held is None else self._identities[held[0]]
        if held is None or ident is None:
            return 400, {"error": "invalid_grant"}
        scope = held[1]
        value = self.token(ident, scopes=(scope,), expires_in=172800)
        server = scope.removeprefix("https://auth.globus.org/scopes/").split("/")[0]
        return 200, {
            "access_token": value,
            "scope": scope,
            "resource_server": server,
            "expires_in": 172800,
            "token_type": "Bearer",
            "refresh_token": form["refresh_token"],
            "other_tokens": [],
        }

    def _dependent(self, form: Mapping[str, str]) -> tuple[int, Any]:
        if form.get("grant_type") == "refresh_token":
            return self._refresh(form)
        if form.get("grant_type") != "urn:globus:auth:grant_type:dependent_token":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            info = self._tokens.get(form.get("token", ""))
        if info is None or not info.active:
            return 400, {"error": "invalid_grant"}
        granted = []
        for scope in form.get("scope", GROUPS_SCOPE).split():
            with self._lock:
                ident = self._identities[info.sub]
            value = self.token(ident, scopes=(scope,), expires_in=172800)
            server = (
                "groups.api.globus.org"
                if scope == GROUPS_SCOPE
                else scope.removeprefix("https://auth.globus.org/scopes/").split("/")[0]
            )
            grant = {
                "access_token": value,
                "scope": scope,
                "resource_server": server,
                "expires_in": 172800,
                "token_type": "Bearer",
            }
            if form.get("access_type") == "offline":
                refresh = "fake-refresh-" + secrets.token_urlsafe(24)
                with self._lock:
                    self._refresh_tokens[refresh] = (info.sub, scope)
                grant["refresh_token"] = refresh
            granted.append(grant)
        return 200, granted

    def _my_groups(self, headers: Mapping[str, str]) -> tuple[int, Any]:
        scheme, _, value = headers.get("Authorization", "").partition(" ")
        with self._lock:
            info = self._tokens.get(value) if scheme.lower() == "bearer" else None
            if info is None or not info.active or GROUPS_SCOPE not in info.scopes:
                return 401, {"code": "AUTHENTICATION_FAILED"}
            ident = self._identities[info.sub]
            mine = {info.sub, *ident.linked}
            found = [
                {
                    "id": gid,
                    "name": f"group {gid[:8]}",
                    "my_memberships": [
                        {"identity_id": m, "status": "active", "role": "member"}
                        for m in members & mine
                    ],
                }
                for gid, members in self._groups.items()
                if members & mine
            ]
        return 200, found


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a hanging call is expected; stay quiet.
        return


def _handler_for(fake: FakeGlobusAuth) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, doc = fake._respond(self.command, self.path, self.headers, body)  # type: ignore[arg-type]
            data = orjson.dumps(doc)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: tests read the counters instead

    return Handler
