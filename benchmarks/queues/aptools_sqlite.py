"""aptools on its SQLite store (see :mod:`benchmarks.queues._aptools`)."""

from benchmarks.queues._aptools import drain, fill, serve, submit

NAME = "aptools"
STORE = "sqlite"
__all__ = ["NAME", "STORE", "drain", "fill", "serve", "submit"]
