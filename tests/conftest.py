"""Shared fixtures: a fake Globus Auth for the session, and apps of both flavours."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import falcon.testing
import pytest

from aptools import MemoryStore, Provider
from aptools.testing import FakeGlobusAuth, FakeIdentity

ECHO_SCHEMA = {
    "type": "object",
    "properties": {"input_string": {"type": "string"}},
    "required": ["input_string"],
    "additionalProperties": False,
}


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many worker processes ``-n auto`` starts: three per core (at least
    four, at most twelve), as most tests wait on a server, a subprocess or
    PostgreSQL rather than on a core. ``PYTEST_XDIST_AUTO_NUM_WORKERS``
    overrides it; ``-n 0`` runs the suite in this one process."""
    given = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if given:
        return int(given)
    return min(12, max(4, 3 * (os.cpu_count() or 1)))


def _uses_postgresql(item: pytest.Item) -> bool:
    """Whether ``item`` works on PostgreSQL: its module's name or its
    parameters say so, or it takes a schema."""
    return "postgresql" in item.nodeid or "schema" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that use PostgreSQL run one after another in one worker
    (``xdist_group``): each holds up to tens of connections (pools, servers of
    several processes), and several at once would exhaust the server's
    ``max_connections``, which the suite shares with whatever else uses it.
    They go first, being the longest series, then the end-to-end tests (the
    longest of the rest), so that the last worker is not left with them."""
    for item in items:
        if _uses_postgresql(item):
            item.add_marker(pytest.mark.xdist_group("postgresql"))
    items.sort(
        key=lambda item: (
            not _uses_postgresql(item),
            item.get_closest_marker("e2e") is None,
        )
    )


@pytest.fixture(scope="session")
def auth() -> Iterator[FakeGlobusAuth]:
    with FakeGlobusAuth() as fake:
        saved = {k: os.environ.get(k) for k in fake.env()}
        os.environ.update(fake.env())
        os.environ.setdefault("APTOOLS_STORE", "memory:")
        yield fake
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


@pytest.fixture(autouse=True)
def _healthy_auth(auth: FakeGlobusAuth) -> Iterator[None]:
    auth.recover()
    yield
    auth.recover()


@pytest.fixture
def alice(auth: FakeGlobusAuth) -> FakeIdentity:
    return auth.identity("alice@example.org")


@pytest.fixture
def bob(auth: FakeGlobusAuth) -> FakeIdentity:
    return auth.identity("bob@example.org")


@pytest.fixture(params=["wsgi", "asgi"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def bearer(who: FakeIdentity | str) -> dict[str, str]:
    token = who if isinstance(who, str) else who.token
    return {"Authorization": f"Bearer {token}"}


class Client(falcon.testing.TestClient):
    """A test client that knows the provider's prefix."""

    def __init__(self, app: Any, prefix: str) -> None:
        super().__init__(app)
        self.prefix = prefix.rstrip("/")

    def call(
        self, method: str, path: str, who: FakeIdentity | str | None = None, **kw: Any
    ) -> falcon.testing.Result:
        headers = dict(kw.pop("headers", {}) or {})
        if who is not None:
            headers.update(bearer(who))
        return self.simulate_request(method, self.prefix + path, headers=headers, **kw)

    def run(
        self, who: FakeIdentity | str, body: Any, request_id: str = "r1", **extra: Any
    ) -> falcon.testing.Result:
        return self.call(
            "POST", "/run", who, json={"request_id": request_id, "body": body, **extra}
        )


MakeClient = Callable[..., tuple[Provider, Client]]


@pytest.fixture
def make(auth: FakeGlobusAuth, flavour: str) -> MakeClient:
    """Build a provider (echo schema by default), register handlers, get a client.

    ``make(run=fn, status=fn, ..., **provider_kwargs)``
    """

    def build(**kw: Any) -> tuple[Provider, Client]:
        handlers = {
            name: kw.pop(name)
            for name in (
                "run",
                "status",
                "cancel",
                "release",
                "log",
                "enumerate",
                "resume",
            )
            if name in kw
        }
        settings: dict[str, Any] = {
            "title": "Test provider",
            "scope": auth.scope,
            "admin_contact": "admin@example.org",
            "input_schema": ECHO_SCHEMA,
            "prefix": "/test",
            "store": MemoryStore(),
        }
        hooks = kw.pop("after_request", ())
        settings.update(kw)
        provider = Provider(**settings)
        for hook in hooks:
            provider.after_request(hook)
        handlers.setdefault(
            "run", lambda request, caller: {"you_said": request.body["input_string"]}
        )
        for name, fn in handlers.items():
            getattr(provider, name)(fn)
        app = provider.wsgi() if flavour == "wsgi" else provider.asgi()
        return provider, Client(app, provider.prefix)

    return build
