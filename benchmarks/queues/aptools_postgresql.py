"""aptools on its PostgreSQL store (see :mod:`benchmarks.queues._aptools`)."""

from benchmarks.queues._aptools import drain, fill, serve, submit

NAME = "aptools"
STORE = "postgresql"
__all__ = ["NAME", "STORE", "drain", "fill", "serve", "submit"]
