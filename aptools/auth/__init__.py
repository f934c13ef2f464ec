"""Who is calling: bearer token -> :class:`Caller`, through Globus Auth."""

from aptools.auth.authenticator import Authenticator, SharedIntrospections
from aptools.auth.caller import Caller

__all__ = ["Authenticator", "Caller", "SharedIntrospections"]
