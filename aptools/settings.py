"""A provider's settings, checked when it is defined."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from aptools.models import DURATION_PATTERN
from aptools.schema import compile_request_validator, load_schema
from aptools.schemacheck import check_schema
from aptools.vocabulary import ALL_AUTHENTICATED, PRINCIPAL_PATTERN, PUBLIC

__all__ = ["DEFAULT_MAX_BODY", "ProviderConfigError", "check_settings"]

_PRINCIPAL = re.compile(PRINCIPAL_PATTERN)
_DURATION = re.compile(DURATION_PATTERN)
DEFAULT_MAX_BODY: Final = 1024 * 1024


class ProviderConfigError(ValueError):
    """A provider is set up wrongly; raised when it is defined or built."""


def check_settings(
    *,
    title: str,
    scope: str,
    admin_contact: str,
    prefix: str,
    subtitle: str | None,
    description: str | None,
    keywords: Sequence[str],
    visible_to: Sequence[str],
    runnable_by: Sequence[str],
    administered_by: Sequence[str],
    maximum_deadline: str,
    release_after: str,
    max_body_size: int,
    handler_threads: int | None,
    store_namespace: str | None,
    run_lease: float = 10.0,
    pending_wait: float = 30.0,
) -> None:
    """Raise :class:`ProviderConfigError` for the first setting out of bounds
    (the bounds of :class:`~aptools.Provider`'s documentation)."""
    _check_text("title", title, 128)
    _check_text("scope", scope, 1024)
    _check_text("admin_contact", admin_contact, 1024)
    if subtitle is not None:
        _check_text("subtitle", subtitle, 128)
    if description is not None:
        _check_text("description", description, 4096)
    if sum(len(k) for k in keywords) > 1024:
        raise ProviderConfigError("keywords may hold 1024 characters in all")
    if not prefix.startswith("/"):
        raise ProviderConfigError(f"prefix must start with '/': {prefix!r}")
    _check_principals("visible_to", visible_to, PUBLIC, ALL_AUTHENTICATED)
    _check_principals("runnable_by", runnable_by, ALL_AUTHENTICATED)
    _check_principals("administered_by", administered_by)
    for name, value in (
        ("maximum_deadline", maximum_deadline),
        ("release_after", release_after),
    ):
        if not _DURATION.match(value):
            raise ProviderConfigError(
                f"{name} must be an ISO 8601 duration such as 'P30D': {value!r}"
            )
    if store_namespace is not None:
        _check_text("store_namespace", store_namespace, 1024)
    if max_body_size < 1:
        raise ProviderConfigError("max_body_size must be positive")
    if not run_lease >= 1:
        raise ProviderConfigError("run_lease must be a number of seconds, 1 or more")
    if not pending_wait >= 0:
        raise ProviderConfigError("pending_wait must be a number of seconds, 0 or more")
    if handler_threads is not None and (
        isinstance(handler_threads, bool)
        or not isinstance(handler_threads, int)
        or handler_threads < 1
    ):
        raise ProviderConfigError(
            f"handler_threads must be a positive whole number: {handler_threads!r}"
        )


def load_input_schema(schema: Any, *, stacklevel: int = 2) -> dict[str, Any]:
    """The input schema from a mapping, JSON text or a file path, checked:
    a bad pattern is a :class:`ProviderConfigError`; an unknown keyword a
    warning pointing ``stacklevel`` frames up (see :mod:`aptools.schemacheck`).
    """
    try:
        loaded: dict[str, Any] = load_schema(schema)
        check_schema(loaded, stacklevel=stacklevel + 1)
    except ValueError as exc:
        raise ProviderConfigError(str(exc)) from None
    return loaded


def client_credentials(
    client_id: str | None, client_secret: str | None
) -> tuple[str, str]:
    """The Globus Auth client's id and secret: given, else from the environment
    (``APTOOLS_CLIENT_ID``, ``APTOOLS_CLIENT_SECRET``)."""
    client_id = client_id or os.environ.get("APTOOLS_CLIENT_ID")
    secret = client_secret or os.environ.get("APTOOLS_CLIENT_SECRET")
    if not client_id:
        raise ProviderConfigError(
            "no Globus Auth client id: pass client_id= or set APTOOLS_CLIENT_ID"
        )
    if not secret:
        raise ProviderConfigError(
            "no Globus Auth client secret: pass client_secret= or set "
            "APTOOLS_CLIENT_SECRET"
        )
    return client_id, secret


def compile_validator(
    schema: Mapping[str, Any], echo_input: bool
) -> Callable[[Any], Any]:
    """The run request's validator; a bad schema is a ProviderConfigError."""
    try:
        return compile_request_validator(schema, echo_input=echo_input)
    except ValueError as exc:
        raise ProviderConfigError(str(exc)) from None


def _check_text(name: str, value: str, most: int) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= most:
        raise ProviderConfigError(f"{name} must be a string of 1 to {most} characters")


def _check_principals(name: str, values: Iterable[str], *words: str) -> None:
    """Principal URNs, or one of ``words`` (``public``, ...)."""
    if isinstance(values, str):
        raise ProviderConfigError(
            f"{name} must be a list of principal URNs, not a string"
        )
    for value in values:
        if value not in words and not _PRINCIPAL.match(value):
            allowed = "".join(f" or {word!r}" for word in words)
            raise ProviderConfigError(
                f"{name}: {value!r} is not a principal URN (urn:globus:auth:"
                f"identity:<uuid> or urn:globus:groups:id:<uuid>){allowed}"
            )


def base_url(value: str | None) -> str:
    """``public_url`` checked: an absolute http(s) URL or a path, without
    query or fragment, and without a trailing ``/``; ``/`` when not given.
    Raises :class:`ProviderConfigError` otherwise. What it means:
    :func:`server_url`."""
    if not value:
        return "/"
    parts = urlsplit(value)
    absolute = parts.scheme in ("http", "https") and parts.netloc
    if parts.query or parts.fragment or not (absolute or value.startswith("/")):
        raise ProviderConfigError(
            "public_url (or APTOOLS_PUBLIC_URL) must be an http(s) URL such as "
            f"https://ap.example.org, or a path: {value!r}"
        )
    return value.rstrip("/") or "/"


def server_url(public_url: str, prefix: str) -> str:
    """The OpenAPI document's ``servers`` URL for ``public_url`` (checked by
    :func:`base_url`): the URL to which the document's paths, which start
    with the provider's ``prefix``, are appended.

    ``public_url`` is where clients reach the provider, in either form:

    - the provider's own URL, its path ending in ``prefix`` (what a Flow's
      ``action_url`` names): ``https://ap.example.org/skeleton`` with prefix
      ``/skeleton`` gives ``https://ap.example.org``;
    - the root of the server, its path not ending in ``prefix``:
      ``https://ap.example.org``, or ``https://example.org/gateway`` behind a
      proxy, is kept as it is.

    A path that ends in the prefix is always read as the first form, so a
    server root whose own path ends in the prefix (a proxy serving the root
    at ``/skeleton``, with prefix ``/skeleton``) is given as the provider's
    URL: ``https://example.org/skeleton/skeleton``. With prefix ``/`` both
    forms are the same URL.

    >>> server_url("https://ap.example.org/skeleton", "/skeleton")
    'https://ap.example.org'
    >>> server_url("https://ap.example.org", "/skeleton")
    'https://ap.example.org'
    """
    base = prefix.rstrip("/")
    if not base:
        return public_url
    parts = urlsplit(public_url)
    path = parts.path if parts.scheme else public_url
    if path.endswith(base):  # ``base`` starts with "/": whole segments only
        return public_url[: -len(base)] or "/"
    return public_url
