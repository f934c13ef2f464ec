"""The memory backend: actions and their jobs in this process, gone when it ends.

``store.py`` keeps the actions, ``jobs.py`` the job queue beside them.
"""

from __future__ import annotations

from aptools.store.memory.jobs import MemoryJobQueue
from aptools.store.memory.store import MemoryStore

__all__ = ["MemoryJobQueue", "MemoryStore"]
