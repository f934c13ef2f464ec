"""How Globus answers read as aptools errors: outages, refusals, consent."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

from aptools.errors import AuthServiceError, AuthServiceUnavailable, ConsentRequired

log = logging.getLogger("aptools.auth")


def scope_names(scope: str) -> frozenset[str]:
    """The scope strings named by ``scope``, their dependencies left out."""
    from globus_sdk.scopes import ScopeParseError, ScopeParser

    try:
        return frozenset(s.scope_string for s in ScopeParser.parse(scope))
    except ScopeParseError:
        return frozenset(scope.split())


def retry_after(headers: Any) -> int | None:
    """Seconds from a ``Retry-After`` header (seconds or HTTP-date), capped."""
    value = str(headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return int(min(max(seconds, 1), 300))


def failure_record(exc: AuthServiceError) -> dict[str, Any]:
    """A failure as a shared record (no token, no secret)."""
    record: dict[str, Any] = {"failed": exc.status_code, "description": exc.description}
    if isinstance(exc, AuthServiceUnavailable):
        record["retry_after"] = exc.retry_after
    return record


def failure_from(record: dict[str, Any]) -> AuthServiceError:
    description = str(record.get("description") or "") or None
    if record["failed"] == AuthServiceUnavailable.status_code:
        return AuthServiceUnavailable(
            description, retry_after=int(record.get("retry_after") or 0) or None
        )
    return AuthServiceError(description)


#: What a job's caller is told when Globus Auth refuses a grant made with a
#: token that expired or was revoked (``invalid_grant``).
GRANT_REFUSED = (
    "Globus Auth no longer accepts the token the provider holds to act for you "
    "(it expired, or the consent was revoked); consent and resume the action."
)


@contextlib.contextmanager
def auth_errors(
    what: str, *, consent_for: str | list[str] | None = None
) -> Iterator[None]:
    """Map globus-sdk failures to 502/503 answers, logging what happened.

    With ``consent_for`` (a scope, or several), Globus Auth refusing a
    grant because consent is missing (a Globus Auth Requirements Error or its legacy
    ``dependent_consent_required`` form) is :class:`ConsentRequired`, and so
    is ``invalid_grant`` (RFC 6749 section 5.2: the token or refresh token
    granted with expired or was revoked): the caller must act again. The log
    names Globus Auth's error code and description, never a token.
    """
    import globus_sdk

    asked = [consent_for] if isinstance(consent_for, str) else consent_for
    try:
        yield
    except globus_sdk.NetworkError as exc:
        log.warning("could not %s: Globus unreachable (%s)", what, type(exc).__name__)
        raise AuthServiceUnavailable() from None
    except globus_sdk.GlobusAPIError as exc:
        code, description = error_of(exc)
        if asked and exc.http_status in (400, 403):
            missing = _missing_consent(exc)
            if missing is not None:
                log.info("could not %s: the caller has not consented", what)
                raise ConsentRequired(required_scopes=missing or asked) from None
            if code == "invalid_grant":
                log.info(
                    "could not %s: Globus Auth answered invalid_grant (%r)",
                    what,
                    description,
                )
                raise ConsentRequired(GRANT_REFUSED, required_scopes=asked) from None
        log.error(
            "could not %s: Globus answered HTTP %s (%s: %r)",
            what,
            exc.http_status,
            code,
            description,
        )
        if exc.http_status in (401, 403):
            raise AuthServiceError(
                "The provider could not authenticate itself to Globus Auth."
            ) from None
        if exc.http_status >= 500 or exc.http_status == 429:
            raise AuthServiceUnavailable(retry_after=retry_after(exc.headers)) from None
        raise AuthServiceError() from None


def error_of(exc: Any) -> tuple[str | None, str | None]:
    """Globus's error code and description in a refusal: OAuth 2's
    ``error``/``error_description`` (RFC 6749 section 5.2) or globus-sdk's
    reading of other forms; each at most 200 characters."""
    body = getattr(exc, "raw_json", None)
    code = description = None
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            code = body["error"]
        if isinstance(body.get("error_description"), str):
            description = body["error_description"]
    code = code or (exc.code if isinstance(exc.code, str) else None)
    description = description or (exc.message if isinstance(exc.message, str) else None)
    return (
        None if code is None else code[:200],
        None if description is None else description[:200],
    )


def _missing_consent(exc: Any) -> list[str] | None:
    """The scopes a refusal says need consent ([] if unnamed); None if the
    refusal is not about consent."""
    from globus_sdk.gare import to_gare

    gare = to_gare(exc)
    if gare is None or gare.code != "ConsentRequired":
        return None
    return list(gare.authorization_parameters.required_scopes or [])
