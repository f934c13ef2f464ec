"""Testing kit for providers and their authors.

- :class:`FakeGlobusAuth`: a Globus Auth + Groups server on loopback that the
  real globus-sdk talks to: identities, tokens, scopes, groups, failures.
- :class:`ProviderClient`: calls a provider as a named identity, in process
  (WSGI or ASGI) or over HTTP.
- The pytest plugin (registered automatically when aptools is installed)
  adds the ``fake_globus_auth`` fixture.
- :mod:`aptools.testing.store_contract`: the tests any action store must
  pass (imported on its own; it needs pytest).
"""

from aptools.testing.client import ProviderClient, Reply
from aptools.testing.fakeauth import FakeGlobusAuth, FakeIdentity

__all__ = ["FakeGlobusAuth", "FakeIdentity", "ProviderClient", "Reply"]
