"""The error answers a server writes itself, before any application sees
the request: the malformed requests gunicorn, uvicorn and ``aptools dev``'s
server refuse while reading them. Each is ``{"code", "description"}`` as
every other answer (docs/reference/errors.md): ``code`` is the status's
reason phrase without spaces (``BadRequest``), ``description`` a fixed text
that never quotes what the client sent (see :func:`error_answer`).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

import falcon
import orjson

__all__ = ["DESCRIPTIONS", "error_answer", "error_body"]

#: What each status means when a server answers it on its own.
DESCRIPTIONS: Final[dict[int, str]] = {
    400: (
        "The request is not well-formed HTTP/1.1: its request line, a header "
        "or its body's framing is malformed."
    ),
    403: "The request is forbidden.",
    413: "The request body is too large.",
    414: "The request line is too long.",
    417: "The Expect header asks for what this server does not do.",
    431: "The request's header fields are too large.",
    500: "The server failed to answer this request.",
    501: "The request's transfer coding is not supported.",
}


def error_body(status: int) -> bytes:
    """``{"code": ..., "description": ...}`` for ``status`` (an HTTP status
    code, 400 to 599), as UTF-8 JSON bytes."""
    # The code as the apps' own routing errors spell it (faces.app.render_error).
    phrase = falcon.code_to_http_status(status)[4:]
    code = "".join(word.capitalize() for word in phrase.split())
    description = DESCRIPTIONS.get(status, HTTPStatus(status).description + ".")
    return orjson.dumps({"code": code, "description": description})


def error_answer(status: int) -> bytes:
    """A whole HTTP/1.1 answer of ``status`` with its JSON error body
    (:func:`error_body`), closing the connection."""
    body = error_body(status)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body
