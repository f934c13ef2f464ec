"""The two faces of one protocol core: a Falcon WSGI app and a Falcon ASGI app.

Each responder reads the request, drives the shared operation
(:mod:`aptools.faces.drivers`) and writes the reply; nothing here knows the
protocol.
"""

from aptools.faces.asgi import build_asgi
from aptools.faces.wsgi import build_wsgi

__all__ = ["build_asgi", "build_wsgi"]
