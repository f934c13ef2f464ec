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
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from aptools.testing._fakeserver import (
    FakeServer,
    consent_refusal,
    group_document,
    handler_for,
    token_document,
)
from aptools.testing.loading import environment_set
from aptools.vocabulary import GROUPS_SCOPE

__all__ = ["FakeGlobusAuth", "FakeIdentity"]

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
    - :meth:`fail` makes every call answer an HTTP error (``fail(429,
      retry_after=3)`` as a rate limit), :meth:`hang` makes calls wait without
      answering, :meth:`recover` ends either; after :meth:`stop` nothing
      answers, not even connections kept alive from before.
    - :meth:`withhold_consent` keeps an identity from having consented to a
      scope (the dependent-token grant then answers without a token for it,
      or refuses with ``dependent_consent_required``), :meth:`grant_consent`
      gives the consent.
    - :attr:`calls` counts requests by endpoint (``"introspect"``,
      ``"dependent_token"``, ``"my_groups"``), :attr:`grants` dependent
      tokens granted by scope, :meth:`introspected` a token's introspections.
    - ``clock_offset`` (seconds) sets this server's clock ahead of the host's
      (behind if negative), as a distant Globus Auth's may be: tokens' ``exp``
      and whether they are active follow its clock.
    """

    def __init__(
        self,
        *,
        scope: str = DEFAULT_SCOPE,
        client_id: str | None = None,
        client_secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock_offset: float = 0.0,
    ) -> None:
        self.scope = scope
        self.client_id = client_id or str(uuid.uuid4())
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.calls: collections.Counter[str] = collections.Counter()
        self.grants: collections.Counter[str] = collections.Counter()
        self._asked: collections.Counter[str] = collections.Counter()
        #: Seconds this server's clock is ahead of the host's.
        self.clock_offset = clock_offset
        #: Seconds every call waits before answering, to mimic a distant service.
        self.latency = 0.0
        self._tokens: dict[str, _Token] = {}
        # refresh token -> (identity id, scope), from offline dependent grants
        self._refresh_tokens: dict[str, tuple[str, str]] = {}
        self._identities: dict[str, FakeIdentity] = {}
        self._groups: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._failure: int | None = None
        self._retry_after: int | None = None
        self._no_consent: dict[tuple[str, str], bool] = {}
        self._hanging = threading.Event()
        self._released = threading.Event()
        self._server = FakeServer((host, port), handler_for(self._answer))
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
        """Stop answering: the port closes, and so does every open connection."""
        self._server.stopped = True
        self.recover()
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
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

    def environment(self) -> AbstractContextManager[dict[str, str]]:
        """Set :meth:`env` in ``os.environ`` for the block, then restore it."""
        return environment_set(self.env())

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
                exp=int(self.now()) + expires_in,
                client_id=self.client_id,
            )
        return value

    def now(self) -> float:
        """This server's clock: the host's plus :attr:`clock_offset` (POSIX s)."""
        return time.time() + self.clock_offset

    def withhold_consent(
        self, identity: FakeIdentity, scope: str, *, refuse: bool = False
    ) -> None:
        """``identity`` has not consented to ``scope`` (until :meth:`grant_consent`).

        Dependent-token grants for ``scope`` then answer without a token for
        it, as Globus Auth does; with ``refuse=True`` they answer 400
        ``dependent_consent_required`` naming the scope instead.
        """
        with self._lock:
            self._no_consent[(identity.id, scope)] = refuse

    def grant_consent(self, identity: FakeIdentity, scope: str) -> None:
        """``identity`` consents to ``scope``: grants for it give tokens again."""
        with self._lock:
            self._no_consent.pop((identity.id, scope), None)

    def introspected(self, token: str) -> int:
        """How many times ``token`` was sent to introspection."""
        with self._lock:
            return self._asked[token]

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

    def fail(self, status: int = 500, *, retry_after: int | None = None) -> None:
        """Answer every call with HTTP ``status`` until :meth:`recover`,
        the calls :meth:`hang` holds included.

        ``retry_after`` (seconds) adds a ``Retry-After`` header, as Globus
        Auth's rate limit (429) does.
        """
        self._retry_after = retry_after
        self._failure = status
        self._hanging.clear()
        self._released.set()  # calls hanging now answer with the failure

    def hang(self) -> None:
        """Accept calls but never answer them until :meth:`recover`."""
        self._released.clear()
        self._hanging.set()

    def recover(self) -> None:
        """Answer normally again."""
        self._failure = None
        self._retry_after = None
        self._hanging.clear()
        self._released.set()

    # -- request handling -----------------------------------------------------------

    def _answer(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]] | None:
        """(status, JSON document, extra headers); ``None``: stopped, no answer."""
        status, doc = self._respond(method, path, headers, body)
        if self._server.stopped:
            return None
        extra = {}
        if self._retry_after is not None and status == self._failure:
            extra["Retry-After"] = str(self._retry_after)
        return status, doc, extra

    def _respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any]:
        route = urlsplit(path).path.rstrip("/")
        name = {
            "/v2/oauth2/token/introspect": "introspect",
            "/v2/oauth2/token": "dependent_token",
            "/v2/groups/my_groups": "my_groups",
        }.get(route, "unknown")
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        with self._lock:
            self.calls[name] += 1
            if name == "introspect":
                self._asked[form.get("token", "")] += 1
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
        if info is None or ident is None or not info.active or info.exp < self.now():
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
        if info is None or not info.active or info.exp < self.now():
            return 400, {"error": "invalid_grant"}
        wanted = form.get("scope", GROUPS_SCOPE).split()
        with self._lock:
            ident = self._identities[info.sub]
            withheld = {
                s: self._no_consent[(info.sub, s)]
                for s in wanted
                if (info.sub, s) in self._no_consent
            }
        refused = [s for s, refuse in withheld.items() if refuse]
        if refused:
            return 400, consent_refusal(refused)
        granted = []
        for scope in wanted:
            if scope in withheld:
                continue  # no consent: no token for it, and no word why
            value = self.token(ident, scopes=(scope,), expires_in=172800)
            with self._lock:
                self.grants[scope] += 1
            grant = token_document(value, scope, expires_in=172800)
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
                group_document(gid, members & mine)
                for gid, members in self._groups.items()
                if members & mine
            ]
        return 200, found
