"""Testing kit for providers and their authors.

- :class:`FakeGlobusAuth`: a Globus Auth + Groups server on loopback that the
  real globus-sdk talks to: identities, tokens, scopes, groups, failures.
- :class:`ProviderClient`: calls a provider as a named identity, in process
  (WSGI or ASGI) or over HTTP.
- :func:`load_provider`: imports a provider module anew, so that each test's
  provider talks to that test's fake Globus Auth.
- :func:`serve` (in :mod:`aptools.testing.servers`): a provider under a real
  gunicorn or uvicorn, waited for and stopped with all its processes.
- The pytest plugin (registered automatically when aptools is installed)
  adds the ``fake_globus_auth`` fixture.
"""

from aptools.testing.client import ProviderClient, Reply
from aptools.testing.fakeauth import FakeGlobusAuth, FakeIdentity
from aptools.testing.loading import load_provider

__all__ = ["FakeGlobusAuth", "FakeIdentity", "ProviderClient", "Reply", "load_provider"]
