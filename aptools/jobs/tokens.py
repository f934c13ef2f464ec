"""Acting as the caller for a whole job: dependent refresh tokens, kept
encrypted at rest beside the job.

A job declared with ``keep_tokens=True`` gets, the first time it asks for a
scope, a dependent-token grant with ``access_type=offline`` (a refresh token
for that scope). The refresh tokens go into the job's row encrypted with
Fernet (``cryptography``), so ``caller.authorizer(scope)`` keeps working after
the caller's access token expired, and in another process after a take-over.
They are never logged, and go with the row when the job ends.

A job resumed after a missing consent keeps, the same way, the access token of
the caller who resumed it (:func:`seal`), so that the process that takes it up
can ask for the tokens the consent now allows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from aptools.auth import Caller
from aptools.auth.globus import auth_errors, scope_names
from aptools.errors import AuthServiceError, ConsentRequired
from aptools.jobs.callers import no_token

__all__ = ["KEY_VARIABLE", "TokenCaller", "dev_key", "load_key", "seal"]

KEY_VARIABLE = "APTOOLS_ENCRYPTION_KEY"


def load_key(setting: str | bytes | None) -> Fernet:
    """The Fernet key from ``setting``, else ``APTOOLS_ENCRYPTION_KEY``.

    Raises ``ValueError`` (without the key's text) when neither is set or the
    key is not 32 bytes in URL-safe base64 (``Fernet.generate_key()``).
    """
    key = setting or os.environ.get(KEY_VARIABLE)
    if not key:
        raise ValueError(
            f"a job that keeps tokens needs an encryption key: pass encryption_key= "
            f"or set {KEY_VARIABLE} (make one with: python -c 'from cryptography."
            "fernet import Fernet; print(Fernet.generate_key().decode())')"
        )
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise ValueError(
            f"the encryption key (encryption_key= or {KEY_VARIABLE}) is not 32 "
            "random bytes in URL-safe base64"
        ) from None


def dev_key(path: str | os.PathLike[str]) -> str:
    """A Fernet key kept in the file ``path`` (made, readable by its owner
    only, the first time): for ``aptools dev``, so that tokens kept by jobs
    stay readable across restarts of a development server."""
    found = Path(path)
    if found.exists():
        return found.read_text().strip()
    found.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    fd = os.open(found, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key)
    return key


def seal(fernet: Fernet, refresh: dict[str, str], token: str | None) -> bytes:
    """``refresh`` tokens (by scope) and the caller's access ``token``,
    encrypted for a job's row: ``{"refresh": {...}, "token": ...}``."""
    return fernet.encrypt(orjson.dumps({"refresh": refresh, "token": token}))


def _unsealed(fernet: Fernet, sealed: bytes | None) -> tuple[dict[str, str], str]:
    if not sealed:
        return {}, ""
    try:
        data = orjson.loads(fernet.decrypt(sealed))
    except InvalidToken:
        # Sealed with another key: the caller must act again.
        return {}, ""
    if isinstance(data.get("refresh"), dict):
        return dict(data["refresh"]), str(data.get("token") or "")
    return dict(data), ""  # refresh tokens by scope, as first kept


class TokenCaller(Caller):
    """A job's caller whose dependent tokens come from kept refresh tokens.

    ``save`` stores the encrypted refresh tokens in the job's row.
    """

    __slots__ = ("_fernet", "_kept", "_refresh", "_save")

    def __init__(
        self,
        *,
        fernet: Fernet,
        sealed: bytes | None,
        save: Callable[[bytes], Any],
        **identity: Any,
    ) -> None:
        super().__init__(**identity)
        self._fernet = fernet
        self._save = save
        self._refresh, self._kept = _unsealed(fernet, sealed)
        if not self._token:
            self._token = self._kept  # the resuming caller's, if any

    def __repr__(self) -> str:
        return f"TokenCaller(identity_urn={self.identity_urn!r})"

    def dependent_token(self, scope: str) -> dict[str, Any]:
        """A valid access token for ``scope`` (token data as Globus Auth gives it)."""
        with self._lock:
            found = self._dependent.get(scope)
            if found is not None and found["expires_at_seconds"] - 60 >= time.time():
                return found
            refresh = self._refresh.get(scope)
            found = self._refreshed(refresh) if refresh else self._granted(scope)
            self._dependent[scope] = found
            return found

    def _granted(self, scope: str) -> dict[str, Any]:
        if not self._token:
            # Taken over from a process that died, with no refresh token for
            # the scope: the caller must act again (consent, then resume).
            raise no_token(scope)
        with auth_errors("get a dependent token", consent_for=scope):
            tokens = (
                self._require_auth()
                .client()
                .oauth2_get_dependent_tokens(
                    self._token, scope=scope, refresh_tokens=True
                )
            )
        wanted = scope_names(scope)
        for info in tokens.by_resource_server.values():
            if wanted <= scope_names(str(info.get("scope", ""))):
                refresh = info.get("refresh_token")
                if refresh:
                    self._refresh[scope] = str(refresh)
                    self._save(seal(self._fernet, self._refresh, self._kept or None))
                return dict(info)
        raise ConsentRequired(required_scopes=[scope])

    def _refreshed(self, refresh: str) -> dict[str, Any]:
        with auth_errors("refresh a dependent token"):
            tokens = self._require_auth().client().oauth2_refresh_token(refresh)
        for info in tokens.by_resource_server.values():
            return dict(info)
        raise AuthServiceError("Globus Auth refreshed no token.")
