"""pytest fixtures of aptools' testing kit (loaded through an entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aptools.testing.fakeauth import FakeGlobusAuth
from aptools.testing.servers import stop_all


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop any server a test launched and failed to stop (:func:`~aptools.
    testing.servers.stop_all`), so that none outlives the test run."""
    stop_all()


@pytest.fixture
def fake_globus_auth() -> Iterator[FakeGlobusAuth]:
    """A running fake Globus Auth, with the environment pointing at it.

    Build provider apps inside the test (after this fixture), so that they
    pick up the client id, secret and service URLs it sets.
    """
    with FakeGlobusAuth() as auth, auth.environment():
        yield auth
