"""Testing kit for providers and their authors.

- :class:`FakeGlobusAuth`: a Globus Auth + Groups server on loopback that the
  real globus-sdk talks to: identities, tokens, scopes, groups, consent,
  failures (``fail``, ``hang``, ``stop``) and a skewed clock; its developer
  API (projects, clients, secrets, scopes) for tokens with
  :data:`MANAGE_PROJECTS`.
- :class:`ProviderClient`: calls a provider as a named identity, in process
  (WSGI or ASGI) or over HTTP.
- :func:`load_provider`: imports a provider module anew, so that each test's
  provider talks to that test's fake Globus Auth.
- :mod:`aptools.testing.servers`: ``launch``, ``wait_until_ready`` and
  ``stop`` a real gunicorn or uvicorn, with every process it started.
- The pytest plugin (registered automatically when aptools is installed)
  adds the ``fake_globus_auth`` fixture.
- :func:`wait_for`: poll until something done in the background holds.
- :mod:`aptools.testing.store_contract`: the tests any action store must
  pass (imported on its own; it needs pytest).
- :mod:`aptools.testing.queue_contract`: the tests any job queue must pass
  (imported on its own; it needs pytest).
"""

from aptools.testing._fakeclients import MANAGE_PROJECTS
from aptools.testing.client import ProviderClient, Reply
from aptools.testing.fakeauth import FakeGlobusAuth, FakeIdentity
from aptools.testing.loading import load_provider
from aptools.testing.waiting import wait_for

__all__ = [
    "MANAGE_PROJECTS",
    "FakeGlobusAuth",
    "FakeIdentity",
    "ProviderClient",
    "Reply",
    "load_provider",
    "wait_for",
]
