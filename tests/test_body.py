"""Request bodies without Content-Length, and HTTP versions, on both faces."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import falcon.testing
import orjson
import pytest

from aptools.testing import FakeIdentity
from tests.conftest import MakeClient, bearer

LIMIT = 1024


def _document(size: int = 0) -> bytes:
    return orjson.dumps(
        {"request_id": f"chunked-{size}", "body": {"input_string": "x" * size}}
    )


def _wsgi_post(app: Any, who: FakeIdentity, body: bytes, chunked: bool) -> Any:
    env = falcon.testing.create_environ(
        method="POST",
        path="/test/run",
        headers={**bearer(who), "Content-Type": "application/json"},
    )
    env.pop("CONTENT_LENGTH", None)
    if chunked:
        env["HTTP_TRANSFER_ENCODING"] = "chunked"
    env["wsgi.input"] = io.BytesIO(body)  # the server de-chunked it
    started: list[str] = []
    out = b"".join(app(env, lambda status, headers, exc=None: started.append(status)))
    return int(started[0].split()[0]), out


async def _asgi_post(app: Any, scope_extra: dict[str, Any], body: bytes) -> Any:
    pieces = [body[i : i + 100] for i in range(0, len(body), 100)] or [b""]
    events = [
        {"type": "http.request", "body": p, "more_body": n < len(pieces) - 1}
        for n, p in enumerate(pieces)
    ]
    sent: list[Any] = []

    async def receive() -> Any:
        if events:
            return events.pop(0)
        await asyncio.Event().wait()

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/test/run",
        "raw_path": b"/test/run",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 4000),
        "server": ("127.0.0.1", 80),
        **scope_extra,
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    data = b"".join(
        m.get("body", b"") for m in sent if m["type"] == "http.response.body"
    )
    return status, data


def _headers(who: FakeIdentity) -> list[tuple[bytes, bytes]]:
    return [
        (b"host", b"127.0.0.1"),
        (b"authorization", bearer(who)["Authorization"].encode()),
        (b"content-type", b"application/json"),
        (b"transfer-encoding", b"chunked"),
    ]


@pytest.mark.parametrize(
    ("size", "status"), [(0, 202), (500, 202), (7, 400), (5 * LIMIT, 413)]
)
def test_a_body_without_content_length_is_read_up_to_the_limit(
    make: MakeClient, flavour: str, alice: FakeIdentity, size: int, status: int
) -> None:
    provider, _ = make(max_body_size=LIMIT)
    body = _document(size)
    if status == 400:  # read whole, but cut short by the client: not JSON
        body = body[:-5]
    if flavour == "wsgi":
        got, out = _wsgi_post(provider.wsgi(), alice, body, chunked=True)
    else:
        got, out = asyncio.run(
            _asgi_post(provider.asgi(), {"headers": _headers(alice)}, body)
        )
    assert got == status, out
    if status == 202:
        assert orjson.loads(out)["details"] == {"you_said": "x" * size}
    else:
        assert set(orjson.loads(out)) == {"code", "description"}


def test_a_wsgi_body_with_no_length_and_no_chunking_is_empty(
    make: MakeClient, alice: FakeIdentity
) -> None:
    """PEP 3333: without CONTENT_LENGTH the input is not read (it may block)."""
    provider, _ = make()
    status, out = _wsgi_post(provider.wsgi(), alice, _document(), chunked=False)
    assert status == 400 and b"empty" in out


@pytest.mark.parametrize("version", ["0.9", "2.0", "1.2", "4"])
def test_an_unsupported_http_version_is_a_json_505(
    make: MakeClient, alice: FakeIdentity, version: str
) -> None:
    provider, _ = make()
    status, out = asyncio.run(
        _asgi_post(
            provider.asgi(),
            {"http_version": version, "headers": _headers(alice)},
            _document(),
        )
    )
    assert status == 505
    assert orjson.loads(out)["code"] == "HTTPVersionNotSupported"


@pytest.mark.parametrize("version", ["1.0", "1.1", "2"])
def test_supported_http_versions_are_served(
    make: MakeClient, alice: FakeIdentity, version: str
) -> None:
    provider, _ = make()
    status, _ = asyncio.run(
        _asgi_post(
            provider.asgi(),
            {"http_version": version, "headers": _headers(alice)},
            _document(3),
        )
    )
    assert status == 202
