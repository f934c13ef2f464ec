"""Raw HTTP/1.1 over a socket: for requests no HTTP client will send."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(port: int, request: bytes, timeout: float = 30) -> RawAnswer:
    """Send ``request`` to 127.0.0.1:``port`` as is; read one answer (by its
    Content-Length, else to the end). Raises ``TimeoutError`` if none comes
    within ``timeout`` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length")
        while length is None or len(body) < int(length):
            part = sock.recv(65536)
            if not part:
                break
            body += part
        return RawAnswer(status, headers, body)


def chunked_post(path: str, token: str, document: Any, pieces: int = 3) -> bytes:
    """A POST of ``document`` as JSON in ``pieces`` chunks."""
    data = json.dumps(document).encode()
    step = max(1, -(-len(data) // pieces))
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(data[i : i + step]), data[i : i + step])
        for i in range(0, len(data), step)
    )
    return (
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        ).encode()
        + chunks
        + b"0\r\n\r\n"
    )


def get(path: str, *headers: str) -> bytes:
    """A GET of ``path`` (sent as given) with ``headers`` (whole lines)."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


#: Malformed requests a server answers before any application sees them.
MALFORMED: dict[str, bytes] = {
    "a raw CR in the path": b"GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n",
    "a folded header line": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n  two\r\nConnection: close\r\n\r\n"
    ),
    "a garbage request line": b"\x01\x02 nonsense\r\n\r\n",
    "a 100 kB bearer token": get(
        "/skeleton/actions", "Authorization: Bearer " + "t" * 100_000
    ),
}


def half_closed(port: int, request: bytes, timeout: float = 30) -> RawAnswer | None:
    """Send ``request``, close the sending side (the client sends no more), and
    read one answer; None when the server closes without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while part := sock.recv(65536):
            data += part
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(lines[0].split()[1]), headers, body)


def framed_post(path: str, token: str, head: str, body: bytes) -> bytes:
    """A POST of ``body`` as is, after the header lines in ``head``."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"{head}\r\n"
    ).encode() + body


def broken_bodies(path: str, token: str, document: bytes) -> dict[str, bytes]:
    """Requests whose body framing is wrong (RFC 9112 sections 6, 7.1), each
    carrying ``document`` in full so that a server reading past the fault
    would run it."""
    chunked = "Transfer-Encoding: chunked\r\n"
    size = b"%x" % len(document)
    return {
        "a chunk size that is not hex": framed_post(
            path, token, chunked, b"zz\r\n" + document + b"\r\n0\r\n\r\n"
        ),
        "a chunk size of 20 digits": framed_post(
            path, token, chunked, b"1" * 20 + b"\r\n" + document + b"\r\n0\r\n\r\n"
        ),
        "a chunk without its CRLF": framed_post(
            path, token, chunked, size + b"\r\n" + document + b"XX0\r\n\r\n"
        ),
        "a chunked body cut short": framed_post(
            path, token, chunked, size + b"\r\n" + document
        ),
        "a body shorter than its Content-Length": framed_post(
            path, token, f"Content-Length: {len(document) + 10}\r\n", document
        ),
    }
