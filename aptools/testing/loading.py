"""Load a provider module anew for each test.

Python imports a module once: a provider module imported by a first test
stays built against that test's fake Globus Auth (its client, its URL), and
every later test, with a fake of its own, would get 401 from it.
:func:`load_provider` imports the module afresh instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aptools.provider import Provider

__all__ = ["load_provider"]


def load_provider(
    target: str, *, environment: Mapping[str, str] | None = None
) -> Provider:
    """Import ``target`` anew and return its :class:`~aptools.Provider`, built.

    ``target`` is ``"package.module"`` (the module's one provider) or
    ``"package.module:attr"``. The module and its submodules are dropped from
    ``sys.modules`` and imported again, and the provider is compiled, with
    ``environment`` (say ``{"APTOOLS_STORE": "memory:"}``, or a fake Globus
    Auth's :meth:`~aptools.testing.FakeGlobusAuth.env`) added to
    ``os.environ``; ``os.environ`` is restored afterwards. So the provider
    talks to the Globus Auth the environment names at that moment::

        def test_echo(fake_globus_auth):
            provider = load_provider("echo", environment={"APTOOLS_STORE": "memory:"})
            fake_globus_auth.scope = provider.scope
            ...

    Raises :class:`LookupError` when the module defines no provider, or
    several and ``target`` names none; :class:`ImportError` as ``import``.
    """
    from aptools.provider import Provider

    name, _, attr = target.partition(":")
    with environment_set(environment or {}):
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]
        module = importlib.import_module(name)
        if attr:
            found = getattr(module, attr, None)
            if not isinstance(found, Provider):
                raise LookupError(f"{target} is not a Provider")
        else:
            providers = [v for v in vars(module).values() if isinstance(v, Provider)]
            if len(providers) != 1:
                raise LookupError(
                    f"{name} defines {len(providers)} providers; "
                    "name one as 'module:attr'"
                )
            found = providers[0]
        found.compile()
    return found


@contextmanager
def environment_set(values: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """``values`` added to ``os.environ`` for the block, then restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield dict(values)
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
