"""The keys that seal kept tokens at rest, and their rotation.

``APTOOLS_ENCRYPTION_KEY`` (or a provider's ``encryption_key=``) holds one
Fernet key, or several separated by commas, newest first. Tokens are
encrypted with the first and decrypted with any (``cryptography``'s
:class:`~cryptography.fernet.MultiFernet`); every write seals with the
newest, and ``aptools rekey`` re-seals every kept token at once. A rotation
on several hosts, step by step:

1. ``OLD,NEW`` everywhere (every host reads tokens sealed with ``NEW``);
2. ``NEW,OLD`` everywhere (new writes use ``NEW``);
3. ``aptools rekey MODULE`` (every row is sealed with ``NEW``);
4. ``NEW`` alone.

A kept token that no key opens is the operator's error, never the caller's:
:class:`TokensUnreadable`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from aptools.store.jobqueue import JobQueue

__all__ = [
    "KEY_VARIABLE",
    "TokensUnreadable",
    "dev_key",
    "load_key",
    "rekey",
    "reseal",
    "seal",
    "unseal",
]

KEY_VARIABLE = "APTOOLS_ENCRYPTION_KEY"


class TokensUnreadable(Exception):
    """Kept tokens that no key of the key ring opens (the key they were
    sealed with was dropped or mistyped). Its text names no token or key."""


def load_key(setting: str | bytes | None) -> MultiFernet:
    """The key ring from ``setting``, else ``APTOOLS_ENCRYPTION_KEY``: Fernet
    keys (32 bytes in URL-safe base64, ``Fernet.generate_key()``) separated
    by commas, newest first.

    Raises ``ValueError`` (naming the position of a bad key, never its text)
    when neither is set or a key is malformed.
    """
    found = setting or os.environ.get(KEY_VARIABLE)
    if isinstance(found, bytes):
        found = found.decode(errors="replace")
    if not found or not found.strip(" ,"):
        raise ValueError(
            f"a job that keeps tokens needs an encryption key: pass encryption_key= "
            f"or set {KEY_VARIABLE} (make one with: python -c 'from cryptography."
            "fernet import Fernet; print(Fernet.generate_key().decode())')"
        )
    keys = [part.strip() for part in found.split(",")]
    ring = []
    for place, key in enumerate(keys, 1):
        try:
            ring.append(Fernet(key))
        except (ValueError, TypeError):
            which = "" if len(keys) == 1 else f" (key {place} of {len(keys)})"
            raise ValueError(
                f"the encryption key{which} (encryption_key= or {KEY_VARIABLE}) is "
                "not 32 random bytes in URL-safe base64; several keys are "
                "separated by commas, newest first"
            ) from None
    return MultiFernet(ring)


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


def seal(
    keys: MultiFernet | Fernet, refresh: dict[str, str], token: str | None
) -> bytes:
    """``refresh`` tokens (by scope) and the caller's access ``token``,
    encrypted with the newest key for a job's row:
    ``{"refresh": {...}, "token": ...}``."""
    return keys.encrypt(orjson.dumps({"refresh": refresh, "token": token}))


def unseal(
    keys: MultiFernet | Fernet, sealed: bytes | None
) -> tuple[dict[str, str], str]:
    """The refresh tokens by scope and the access token (``""`` if none) in
    ``sealed``. Raises :class:`TokensUnreadable` when no key opens it."""
    if not sealed:
        return {}, ""
    try:
        data = orjson.loads(keys.decrypt(sealed))
    except (InvalidToken, orjson.JSONDecodeError):
        raise TokensUnreadable(
            "no key of the encryption key ring opens the tokens kept for this "
            f"job: put the key they were sealed with back in {KEY_VARIABLE} "
            "(after the newest, comma-separated)"
        ) from None
    if isinstance(data.get("refresh"), dict):
        return dict(data["refresh"]), str(data.get("token") or "")
    return dict(data), ""  # refresh tokens by scope, as first kept


def reseal(keys: MultiFernet, sealed: bytes) -> bytes:
    """``sealed`` encrypted anew with the newest key (its time kept).
    Raises :class:`TokensUnreadable` when no key opens it."""
    try:
        return keys.rotate(sealed)
    except InvalidToken:
        raise TokensUnreadable("no key of the encryption key ring opens it") from None


def rekey(queue: JobQueue, keys: MultiFernet) -> tuple[int, list[str]]:
    """Re-seal every job's kept tokens in ``queue`` with the newest key of
    ``keys`` (each row a compare-and-set: a row written meanwhile, already
    with the newest key, is left as it is). Returns how many rows were
    re-sealed and the action ids of those no key opens (left untouched)."""
    done, unreadable = 0, []
    for action_id, sealed in queue.kept_tokens().items():
        try:
            fresh = reseal(keys, sealed)
        except TokensUnreadable:
            unreadable.append(action_id)
            continue
        if queue.replace_tokens(action_id, sealed, fresh):
            done += 1
    return done, unreadable
