"""pytest fixtures of aptools' testing kit (loaded through an entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aptools.testing.fakeauth import FakeGlobusAuth


@pytest.fixture
def fake_globus_auth() -> Iterator[FakeGlobusAuth]:
    """A running fake Globus Auth, with the environment pointing at it.

    Build provider apps inside the test (after this fixture), so that they
    pick up the client id, secret and service URLs it sets.
    """
    with FakeGlobusAuth() as auth, auth.environment():
        yield auth
