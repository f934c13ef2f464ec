"""The provider page: ``GET {prefix}/`` for a person, in a browser.

A browser asking for the provider's root (``Accept: text/html`` preferred to
JSON, see :func:`aptools.protocol.negotiate.prefers_html`) is answered one
self-contained HTML page: the description, the input schema as a table, an
example body, a flow ``Action`` state ready to paste (:mod:`aptools.flows`)
and a link to the OpenAPI document. JSON clients get the description
document as before. The page is built once with the provider
(:func:`compile_page`); only the service's origin (scheme and host) is put
in per request, when ``public_url`` does not give it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from aptools.errors import RequestValidationError
from aptools.flows import one_state_flow
from aptools.page.html import CSP, render
from aptools.page.schema import rows
from aptools.schema import example_for

__all__ = ["PAGE_HEADERS", "PAGE_TYPE", "Page", "ProviderPage", "compile_page"]

PAGE_TYPE: Final = "text/html; charset=utf-8"

#: Headers of every page answer, beside ``Content-Type``.
PAGE_HEADERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
)

# A host as a server may be named: a DNS name or IPv4 address, or an IPv6
# address in brackets, with an optional port. Anything else is not shown.
_NETLOC: Final = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(?::[0-9]{1,5})?$"
)


class Page(bytes):
    """An answer's body that is the HTML page (``text/html``), not JSON."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ProviderPage:
    """The page, rendered once: ``parts`` are its UTF-8 text split where the
    service's origin goes (one part when ``public_url`` gave an absolute URL).
    """

    parts: tuple[bytes, ...]

    def render(self, scheme: str, netloc: str) -> Page:
        """The page for a request that came to ``scheme://netloc``. A
        ``netloc`` (the request's ``Host``) that is not a host name, an
        address or a port is left out: URLs are then shown as paths."""
        if len(self.parts) == 1:
            return Page(self.parts[0])
        origin = ""
        if scheme in ("http", "https") and _NETLOC.match(netloc):
            origin = f"{scheme}://{netloc}"
        return Page(origin.encode("ascii").join(self.parts))


def compile_page(
    about: Mapping[str, Any],
    *,
    prefix: str,
    base_url: str,
    dependent_scopes: Sequence[str] = (),
    check_body: Callable[[Any], object] | None = None,
) -> ProviderPage:
    """Render the page of a provider described by ``about`` (its description
    document), served under ``prefix`` at ``base_url`` (the provider's
    ``public_url``: an absolute URL, or a path such as ``/``). The scopes in
    ``dependent_scopes`` are listed as those the provider acts under.

    The example body is made by :func:`aptools.schema.example_for`;
    ``check_body`` (raising :class:`~aptools.RequestValidationError`) says
    whether it would be accepted, and the page says so, or why not."""
    base = "" if base_url == "/" else base_url.rstrip("/")
    root = prefix if prefix != "/" else "/"
    openapi_url = f"{base}{prefix.rstrip('/')}/openapi.json"
    if base.startswith(("http://", "https://")):
        slot = ""
        action_url = f"{base}{root}"
    else:
        # A random mark no author text can hold: the page is split there.
        slot = f"origin{secrets.token_hex(16)}"
        action_url = f"{slot}{base}{root}"
    schema = about.get("input_schema", {})
    example = example_for(schema) if isinstance(schema, Mapping) else {}
    fault = None
    if check_body is not None:
        try:
            check_body(example)
        except RequestValidationError as exc:
            fault = str(exc.description)
    text = render(
        about,
        action_url=action_url,
        openapi_url=openapi_url,
        dependent_scopes=dependent_scopes,
        schema_rows=rows(schema),
        example=example,
        example_fault=fault,
        flow=one_state_flow(str(about["title"]), action_url, example),
    )
    data = text.encode("utf-8")
    parts = tuple(data.split(slot.encode())) if slot else (data,)
    return ProviderPage(parts)
