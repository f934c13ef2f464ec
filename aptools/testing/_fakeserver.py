"""The HTTP side of the fake Globus Auth: a threading server whose
connections can all be closed at once, its request handler, and documents
it answers with."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from aptools.vocabulary import GROUPS_SCOPE

#: (method, path, headers, body) -> (status, JSON document, extra headers),
#: or ``None`` for no answer at all.
Answer = Callable[
    [str, str, Mapping[str, str], bytes], "tuple[int, Any, dict[str, str]] | None"
]


class FakeServer(ThreadingHTTPServer):
    stopped = False

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            if self.stopped:
                self.shutdown_request(request)
                return
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close every connection, kept-alive ones too: nothing answers."""
        with self._open_lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a hanging call is expected; stay quiet.
        return


def handler_for(answer: Answer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # PERF: the head and the body go out in two writes; with Nagle's
        # algorithm the body waited for the client's delayed ACK, about
        # 40 ms a call (49 ms -> 1-2 ms a cold authentication, measured).
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            answered = answer(self.command, self.path, self.headers, body)  # type: ignore[arg-type]
            if answered is None:
                self.close_connection = True
                return  # stopped while this call waited: no answer
            status, doc, extra = answered
            data = orjson.dumps(doc)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: tests read the counters instead

    return Handler


def consent_refusal(scopes: list[str]) -> dict[str, Any]:
    """Globus Auth's refusal of a dependent-token grant for want of consent."""
    return {
        "error": "dependent_consent_required",
        "errors": [
            {
                "code": "DEPENDENT_CONSENT_REQUIRED",
                "detail": "The user has not consented to these scopes.",
                "unapproved_scopes": scopes,
            }
        ],
    }


def group_document(group_id: str, members: set[str]) -> dict[str, Any]:
    """A group as Groups' ``my_groups`` lists it, with the caller's memberships."""
    return {
        "id": group_id,
        "name": f"group {group_id[:8]}",
        "my_memberships": [
            {"identity_id": m, "status": "active", "role": "member"}
            for m in sorted(members)
        ],
    }


def token_document(value: str, scope: str, *, expires_in: int) -> dict[str, Any]:
    """One token of a dependent-token grant's answer."""
    if scope == GROUPS_SCOPE:
        server = "groups.api.globus.org"
    else:
        server = scope.removeprefix("https://auth.globus.org/scopes/").split("/")[0]
    return {
        "access_token": value,
        "scope": scope,
        "resource_server": server,
        "expires_in": expires_in,
        "token_type": "Bearer",
    }
