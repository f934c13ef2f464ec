"""A fake Globus Auth + Groups server on loopback, for tests and local runs.

It speaks the parts of the real HTTP APIs that a provider uses — token
introspection, the dependent-token grant, and Groups' ``my_groups`` — so the
provider under test talks to it through the real globus-sdk::

    with FakeGlobusAuth(scope=provider.scope) as auth, auth.environment():
        alice = auth.identity("alice")
        app = provider.wsgi()
        # ... call the app with headers={"Authorization": f"Bearer {alice.token}"}

This module is the server (start and stop, failure switches, counting and
routing requests); the records it answers from are kept by
:class:`~aptools.testing._fakedirectory.FakeDirectory`.
"""

from __future__ import annotations

import base64
import collections
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from aptools.testing._fakeclients import MANAGE_PROJECTS, FakeClients, auth_error
from aptools.testing._fakedirectory import (
    CONSENT_PATH,
    DEFAULT_SCOPE,
    FakeDirectory,
    FakeIdentity,
)
from aptools.testing._fakeserver import FakeServer, handler_for
from aptools.testing.loading import environment_set

__all__ = ["CONSENT_PATH", "FakeGlobusAuth", "FakeIdentity"]


class FakeGlobusAuth(FakeDirectory):
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
    - Kept tokens: ``dependent_token_lifetime`` (seconds) is how long the
      access tokens of dependent grants and refreshes live;
      ``rotate_refresh_tokens`` makes each refresh answer a new refresh
      token and void the old one (RFC 6749 section 6);
      :meth:`revoke_refresh_tokens` voids refresh tokens and
      :meth:`revoke_consent` takes a consent back (both then answer
      ``invalid_grant``); :attr:`refreshed` counts refreshes by scope.
      ``token(identity, expires_in=2)`` makes a caller's token that expires
      in seconds.
    - Consent over HTTP, for a command line: ``POST`` to :data:`CONSENT_PATH`
      with an identity's own token (``Authorization: Bearer``) and the JSON
      ``{"scope": ..., "consent": "grant" | "revoke" | "withhold"}`` (``aptools
      fakeauth consent`` sends it).
    - :attr:`calls` counts requests by endpoint (``"introspect"``,
      ``"dependent_token"``, ``"my_groups"``), :attr:`grants` dependent
      tokens granted by scope, :meth:`introspected` a token's introspections.
    - :attr:`registrations` is Globus Auth's developer API (projects,
      clients, client secrets, scopes) for callers whose token carries
      ``MANAGE_PROJECTS``; :meth:`project` makes a project to register in.
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
        dependent_token_lifetime: int = 172800,
        rotate_refresh_tokens: bool = False,
    ) -> None:
        super().__init__(
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
            clock_offset=clock_offset,
        )
        self.dependent_token_lifetime = dependent_token_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.calls: collections.Counter[str] = collections.Counter()
        self._asked: collections.Counter[str] = collections.Counter()
        #: Seconds every call waits before answering, to mimic a distant service.
        self.latency = 0.0
        self._failure: int | None = None
        self._retry_after: int | None = None
        self._hanging = threading.Event()
        self._released = threading.Event()
        #: Projects, clients, secrets and scopes registered through the API.
        self.registrations = FakeClients()
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

    def project(self, *admins: FakeIdentity, name: str = "Test project") -> str:
        """A project of the developer API administered by ``admins``; its id.

        A token of an admin's with ``MANAGE_PROJECTS`` (``token(admin,
        scopes=(MANAGE_PROJECTS,))``) registers clients and scopes in it
        through ``globus_sdk.AuthClient``.
        """
        return self.registrations.project(
            *((a.id, a.username) for a in admins), name=name
        )

    # -- request counts ----------------------------------------------------------

    def introspected(self, token: str) -> int:
        """How many times ``token`` was sent to introspection."""
        with self._lock:
            return self._asked[token]

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
            CONSENT_PATH: "consent",
        }.get(route, "unknown")
        if route.startswith("/v2/api/"):
            # "clients", "scopes", "projects"
            name = route.split("/")[3] or "unknown"
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
        if route.startswith("/v2/api/"):
            return self._developer(method, path, headers, body)
        if name == "consent" and method == "POST":
            return self._consent_control(headers, body)
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
        # The fake's own client, or one registered through the developer API.
        if super()._client_ok(header):
            return True
        scheme, _, value = header.partition(" ")
        try:
            decoded = (
                base64.b64decode(value).decode() if scheme.lower() == "basic" else ""
            )
        except ValueError:
            return False
        client_id, _, secret = decoded.partition(":")
        return bool(secret) and self.registrations.knows(client_id, secret)

    def _developer(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any]:
        scheme, _, value = headers.get("Authorization", "").partition(" ")
        with self._lock:
            info = self._tokens.get(value) if scheme.lower() == "bearer" else None
        if info is None or not info.active or info.exp < self.now():
            return auth_error(401, "UNAUTHORIZED", "Call must be authenticated")
        if MANAGE_PROJECTS not in info.scopes:
            return auth_error(403, "FORBIDDEN", "the token lacks manage_projects")
        try:
            doc = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return auth_error(400, "BAD_REQUEST", "the body is not JSON")
        parts = urlsplit(path)
        return self.registrations.answer(
            method, parts.path.rstrip("/"), parts.query, doc, info.sub
        )
