"""The HTTP protocol ``aptools serve --asgi`` and ``aptools dev --asgi``
give uvicorn (its ``--http`` / ``Config(http=...)``): uvicorn's own, but for
the one answer it writes itself, to a request it cannot parse (a raw CR in
the path, a malformed request line or header, a header section over h11's
16 KiB). uvicorn answers those 400 in plain text; this answers
``{"code": "BadRequest", "description": ...}`` (:mod:`aptools.wire`), as
every other answer.

:data:`JSONErrorsProtocol` is built on httptools when it is installed and on
h11 otherwise, as uvicorn's ``auto`` choice is.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

from aptools.wire import error_answer

__all__ = ["H11JSONErrors", "JSONErrorsProtocol"]


class _JSONErrors:
    transport: asyncio.Transport

    def send_400_response(self, msg: str) -> None:
        """The 400 uvicorn answers an unparsable request: JSON; ``msg``
        (uvicorn's plain text) is not used. The connection is closed."""
        self.transport.write(error_answer(400))
        self.transport.close()


class H11JSONErrors(_JSONErrors, H11Protocol):
    """uvicorn's h11 protocol, its 400 in JSON."""


JSONErrorsProtocol: type[asyncio.Protocol] = H11JSONErrors
try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: h11, as uvicorn's auto
    pass
else:

    class HttpToolsJSONErrors(_JSONErrors, HttpToolsProtocol):
        """uvicorn's httptools protocol, its 400 in JSON."""

    JSONErrorsProtocol = HttpToolsJSONErrors
