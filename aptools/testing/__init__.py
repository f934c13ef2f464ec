"""Testing kit for providers: a fake Globus Auth + Groups server on loopback.

See :class:`FakeGlobusAuth`. The pytest plugin (registered automatically when
aptools is installed) adds the ``fake_globus_auth`` fixture.
"""

from aptools.testing.fakeauth import FakeGlobusAuth, FakeIdentity

__all__ = ["FakeGlobusAuth", "FakeIdentity"]
