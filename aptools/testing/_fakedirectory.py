"""The records of the fake Globus Auth: identities, tokens, groups and
consent, and the answers to introspection, the dependent-token grant and
Groups' ``my_groups`` computed from them (the HTTP server is
:class:`aptools.testing.FakeGlobusAuth`)."""

from __future__ import annotations

import base64
import collections
import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aptools.testing._fakeserver import consent_refusal, group_document, token_document
from aptools.vocabulary import GROUPS_SCOPE

__all__ = ["CONSENT_PATH", "DEFAULT_SCOPE", "FakeDirectory", "FakeIdentity"]

DEFAULT_SCOPE: Final = "https://auth.globus.org/scopes/aptools-dev/action_all"
#: Where the fake takes an identity's consent given, revoked or withheld.
CONSENT_PATH: Final = "/aptools-fake/consent"


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


class FakeDirectory:
    """Who exists at the fake Globus Auth, and what it answers about them.

    Every record is read and written under one lock: requests are answered
    on threads of their own while a test adds identities or tokens.
    """

    def __init__(
        self,
        *,
        scope: str,
        client_id: str | None,
        client_secret: str | None,
        clock_offset: float,
    ) -> None:
        self.scope = scope
        self.client_id = client_id or str(uuid.uuid4())
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.grants: collections.Counter[str] = collections.Counter()
        #: Seconds this server's clock is ahead of the host's.
        self.clock_offset = clock_offset
        self._tokens: dict[str, _Token] = {}
        # refresh token -> (identity id, scope), from offline dependent grants
        self._refresh_tokens: dict[str, tuple[str, str]] = {}
        self._identities: dict[str, FakeIdentity] = {}
        self._groups: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._no_consent: dict[tuple[str, str], bool] = {}
        #: Seconds the access tokens of dependent grants and refreshes live.
        self.dependent_token_lifetime = 172800
        #: Each refresh answers a new refresh token and voids the one sent
        #: (RFC 6749 section 6), as Globus Auth may.
        self.rotate_refresh_tokens = False
        #: Refreshes answered, by scope.
        self.refreshed: collections.Counter[str] = collections.Counter()

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

    def revoke_consent(self, identity: FakeIdentity, scope: str) -> None:
        """``identity`` takes back its consent to ``scope``: the refresh
        tokens granted for it are void (``invalid_grant``), and new grants
        give no token for it until :meth:`grant_consent`."""
        self.withhold_consent(identity, scope)
        self.revoke_refresh_tokens(identity, scope)

    def revoke_refresh_tokens(
        self, identity: FakeIdentity, scope: str | None = None
    ) -> int:
        """Void ``identity``'s refresh tokens (for ``scope``, else every
        one): refreshing with them answers ``invalid_grant``. Returns how
        many were voided."""
        with self._lock:
            void = [
                refresh
                for refresh, (sub, granted) in self._refresh_tokens.items()
                if sub == identity.id and scope in (None, granted)
            ]
            for refresh in void:
                del self._refresh_tokens[refresh]
        return len(void)

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

    # -- answers ---------------------------------------------------------------

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
        if held is None or ident is None or (held[0], held[1]) in self._no_consent:
            return 400, {
                "error": "invalid_grant",
                "error_description": "the refresh token is not valid",
            }
        scope = held[1]
        life = self.dependent_token_lifetime
        value = self.token(ident, scopes=(scope,), expires_in=life)
        refresh = form["refresh_token"]
        with self._lock:
            self.refreshed[scope] += 1
            if self.rotate_refresh_tokens:
                refresh = "fake-refresh-" + secrets.token_urlsafe(24)
                self._refresh_tokens[refresh] = self._refresh_tokens.pop(
                    form["refresh_token"], held
                )
        server = scope.removeprefix("https://auth.globus.org/scopes/").split("/")[0]
        return 200, {
            "access_token": value,
            "scope": scope,
            "resource_server": server,
            "expires_in": life,
            "token_type": "Bearer",
            "refresh_token": refresh,
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
            return 400, {
                "error": "invalid_grant",
                "error_description": "the token is not active",
            }
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
            life = self.dependent_token_lifetime
            value = self.token(ident, scopes=(scope,), expires_in=life)
            with self._lock:
                self.grants[scope] += 1
            grant = token_document(value, scope, expires_in=life)
            if form.get("access_type") == "offline":
                refresh = "fake-refresh-" + secrets.token_urlsafe(24)
                with self._lock:
                    self._refresh_tokens[refresh] = (info.sub, scope)
                grant["refresh_token"] = refresh
            granted.append(grant)
        return 200, granted

    def _consent_control(
        self, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any]:
        """An identity (its own bearer token) grants, revokes or withholds
        its consent to a scope: ``{"scope": str, "consent": str}``."""
        scheme, _, value = headers.get("Authorization", "").partition(" ")
        with self._lock:
            info = self._tokens.get(value) if scheme.lower() == "bearer" else None
            ident = None if info is None else self._identities.get(info.sub)
        if info is None or ident is None or not info.active:
            return 401, {"code": "AUTHENTICATION_FAILED"}
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        scope = doc.get("scope") if isinstance(doc, dict) else None
        act = doc.get("consent") if isinstance(doc, dict) else None
        if not isinstance(scope, str) or not scope.strip():
            return 400, {"code": "BAD_REQUEST", "message": "give a scope"}
        if act == "grant":
            self.grant_consent(ident, scope)
        elif act == "revoke":
            self.revoke_consent(ident, scope)
        elif act == "withhold":
            self.withhold_consent(ident, scope)
        else:
            return 400, {
                "code": "BAD_REQUEST",
                "message": "consent is one of grant, revoke, withhold",
            }
        return 200, {"identity": ident.username, "scope": scope, "consent": act}

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
