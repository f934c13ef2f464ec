"""The WSGI server of ``aptools dev``: the standard library's, threaded,
taking chunked request bodies and answering its own errors in JSON.

:mod:`wsgiref` hands an application the raw connection as ``wsgi.input``
and does not de-chunk a body sent with ``Transfer-Encoding: chunked``:
read to its end, that stream ends only when the client gives up. This
server reads such a body itself (at most ``most`` bytes, see
:func:`dechunk`) and hands the application the bytes with their
``CONTENT_LENGTH``, as gunicorn and uvicorn do. The errors it answers
before the application sees a request (a malformed request line or
header, a header line over 64 KiB: 400, 414, 431) are
``{"code", "description"}`` as every other answer (docs/reference/errors.md),
never quoting what the client sent.
"""

from __future__ import annotations

import io
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from aptools.wire import error_body

__all__ = ["DevRequestHandler", "DevServer", "dechunk"]

#: Longest chunk-size line taken (hex digits and extensions), in bytes.
LINE_MOST = 4096


class DevServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server with a thread per connection."""

    daemon_threads = True


class BadChunking(ValueError):
    """A chunked body whose framing is not RFC 9112 section 7.1's."""


def dechunk(stream: io.BufferedIOBase, most: int) -> bytes:
    """The body of a chunked request read from ``stream``: its chunks' data
    joined, up to ``most`` bytes (reading stops there; a caller hands them
    on and the application refuses what is too large). Trailer fields are
    read and dropped. Raises :class:`BadChunking` for a size line that is
    not hexadecimal, a chunk not followed by CRLF, or a stream that ends
    first."""
    parts: list[bytes] = []
    held = 0
    while True:
        line = stream.readline(LINE_MOST + 1)
        if not line.endswith(b"\n") or len(line) > LINE_MOST:
            raise BadChunking("a chunk size line is missing or too long")
        digits = line.split(b";", 1)[0].strip()
        if not digits or any(c not in b"0123456789abcdefABCDEF" for c in digits):
            raise BadChunking("a chunk size is not hexadecimal")
        size = int(digits, 16)
        if size == 0:
            break
        wanted = min(size, most - held)
        data = stream.read(wanted)
        if len(data) < wanted:
            raise BadChunking("the body ended inside a chunk")
        parts.append(data)
        held += len(data)
        if held >= most:
            return b"".join(parts)  # enough to be refused as too large
        if stream.read(2) != b"\r\n":
            raise BadChunking("a chunk is not followed by CRLF")
    while True:  # trailer fields, up to the blank line
        line = stream.readline(LINE_MOST + 1)
        if not line.endswith(b"\n"):
            raise BadChunking("the trailer section does not end")
        if line in (b"\r\n", b"\n"):
            return b"".join(parts)


class DevRequestHandler(WSGIRequestHandler):
    """One connection of ``aptools dev``: chunked bodies de-chunked, errors
    in JSON, no log line of its own (the ``aptools.access`` log says it)."""

    #: Bytes of a chunked body read at most; set by the server's owner to
    #: one more than the provider's ``max_body_size`` (a 413 then).
    most: int = (1 << 20) + 1

    def log_message(self, format: str, *args: Any) -> None:
        return

    def send_error(
        self, code: int, message: str | None = None, explain: str | None = None
    ) -> None:
        """Answer ``code`` as JSON, closing the connection. ``message`` and
        ``explain`` may quote the client's request line: they are not used."""
        status = HTTPStatus(code)
        body = error_body(code)
        if self.request_version == "HTTP/0.9":  # nothing parsed: answer 1.0
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        self.send_response(code, status.phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle(self) -> None:
        """wsgiref's ``handle``, taking a chunked body before the app runs."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if not self.parse_request():  # its error has been answered
            return
        environ = self.get_environ()
        stdin: Any = self.rfile
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            try:
                body = dechunk(self.rfile, self.most)
            except BadChunking:
                self.send_error(HTTPStatus.BAD_REQUEST)
                return
            stdin = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            self.close_connection = True
        out: Any = self.wfile
        handler = ServerHandler(
            stdin, out, self.get_stderr(), environ, multithread=False
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]
