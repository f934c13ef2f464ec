"""Request keys held across processes: POSIX locks on bytes of a claims file.

While a run handler runs, its request key is held not in the database but by
an exclusive lock on one byte of a file beside it (``<db>-claims``), chosen
by the key. The kernel drops such a lock when its process dies, so a crashed
run frees its key at once, with no lease to wait out. Bytes past the request
keys' 32-bit range serve other holds of the same kind (token introspections).

Also here: the one retry-with-backoff helper of the stores, and the fork
counter that tells a forked worker to drop what it inherited.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from aptools.backoff import pauses
from aptools.forks import generation

__all__ = ["Claim", "Claims", "close_claims", "open_claims", "patiently"]


#: The first byte of the claims file beyond the request keys' range.
EXTRA_SLOTS: Final = 1 << 32

# What a lock attempt on a byte another process holds fails with.
_HELD = frozenset({errno.EACCES, errno.EAGAIN})

T = TypeVar("T")


def patiently(
    step: Callable[[], T], busy: Callable[[Exception], bool], wait: float
) -> T:
    """``step()``, tried again while it fails in a way ``busy`` says will
    pass, for up to ``wait`` seconds; pauses double from 1 ms to 50 ms.

    The last failure is raised when time is up or ``busy`` says no.
    """
    give_up = time.monotonic() + wait
    for pause in pauses(0.001, 0.05):
        try:
            return step()
        except Exception as exc:
            if not busy(exc) or time.monotonic() >= give_up:
                raise
        time.sleep(pause)
    raise AssertionError("unreachable: pauses() never ends")


def lock_held(exc: Exception) -> bool:
    """True for the failure of a lock attempt on a byte another process holds."""
    return isinstance(exc, OSError) and exc.errno in _HELD


@dataclass(slots=True)
class Claim:
    """A request key held for one action: ``(namespace, creator_id,
    request_id)``, its byte of the claims file, the request's fingerprint
    and when it was taken (a POSIX time)."""

    key: tuple[str, str, str]
    slot: int
    fingerprint: str
    at: float


class Claims:
    """Request keys whose run handler is running, held across processes.

    In this process a dict says which key is held for which action; across
    processes each key holds an exclusive lock on byte ``slot`` of the claims
    file. Keys sharing a slot (a 32-bit checksum) merely wait for each other.
    POSIX record locks belong to a process (and closing any descriptor of
    the file drops them all), so each process keeps one of these per file
    (see :func:`open_claims`), counts its holders per slot and locks a slot
    once.
    """

    def __init__(self, path: str) -> None:
        self._fd: int | None = os.open(
            path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        self.users = 0
        self._reset()

    def _reset(self) -> None:
        self._mutex = threading.Lock()
        self._by_action: dict[str, Claim] = {}
        self._by_key: dict[tuple[str, str, str], str] = {}
        self._slots: dict[int, int] = {}
        self._forks = generation()

    def take(
        self,
        key: tuple[str, str, str],
        fingerprint: str,
        action_id: str,
        now: float,
        lease: float,
    ) -> Literal["new", "pending", "conflict"]:
        """Hold ``key`` for ``action_id``, unless another holds it.

        A holder in this process older than ``lease`` is taken to be stuck
        and loses the key (its :meth:`give` then finds nothing). Of a holder
        in another process only its existence is known: ``"pending"``.
        """
        if self._forks != generation():
            # A forked child holds none of its parent's locks.
            self._reset()
        with self._mutex:
            held = self._by_key.get(key)
            if held is not None:
                claim = self._by_action[held]
                if now - claim.at < lease:
                    return "pending" if claim.fingerprint == fingerprint else "conflict"
                self._release(held)
            slot = zlib.crc32("\n".join(key).encode())
            if not self._slots.get(slot) and self._fd is not None:
                try:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                except OSError as exc:
                    if exc.errno in _HELD:
                        return "pending"
                    raise
            self._slots[slot] = self._slots.get(slot, 0) + 1
            self._by_key[key] = action_id
            self._by_action[action_id] = Claim(key, slot, fingerprint, now)
            return "new"

    def renew(self, action_ids: Collection[str], now: float) -> None:
        """The holders of these actions' keys are alive at ``now``."""
        with self._mutex:
            for action_id in action_ids:
                claim = self._by_action.get(action_id)
                if claim is not None:
                    claim.at = max(claim.at, now)

    def lock(self, slot: int, wait: float) -> bool:
        """Hold byte ``slot`` (from :data:`EXTRA_SLOTS` on) for this process,
        waiting at most ``wait`` seconds; ``False`` if it could not."""
        fd = self._fd
        if fd is None:
            return False
        try:
            patiently(
                lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot),
                lock_held,
                wait,
            )
        except OSError:
            return False
        return True

    def unlock(self, slot: int) -> None:
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, slot)

    def held(self, action_id: str) -> Claim | None:
        return self._by_action.get(action_id)

    def give(self, action_id: str) -> Claim | None:
        """Let go of ``action_id``'s key; ``None`` if it was not held."""
        with self._mutex:
            return self._release(action_id)

    def _release(self, action_id: str) -> Claim | None:
        claim = self._by_action.pop(action_id, None)
        if claim is None:
            return None
        del self._by_key[claim.key]
        left = self._slots[claim.slot] - 1
        if left:
            self._slots[claim.slot] = left
        else:
            del self._slots[claim.slot]
            if self._fd is not None:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, claim.slot)
        return claim

    def close(self) -> None:
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._by_action.clear()
            self._by_key.clear()
            self._slots.clear()


_shared: dict[str, Claims] = {}
_shared_mutex = threading.Lock()


def open_claims(path: str) -> Claims:
    """This process's claims on the file ``path``, shared by all its stores
    of that file; give each back with :func:`close_claims`."""
    with _shared_mutex:
        claims = _shared.get(path)
        if claims is None:
            claims = _shared[path] = Claims(path)
        claims.users += 1
        return claims


def close_claims(path: str, claims: Claims) -> None:
    """Give back what :func:`open_claims` gave; the last user closes the file."""
    with _shared_mutex:
        claims.users -= 1
        if claims.users <= 0 and _shared.get(path) is claims:
            del _shared[path]
            claims.close()
