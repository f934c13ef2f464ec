"""The author's handlers as the protocol calls them: each function with the
effect that calls it (awaited, in a worker thread, or in place), decided once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aptools.protocol.effects import (
    Await,
    Blocking,
    Call,
    Effect,
    blocking_in,
)
from aptools.protocol.handoff import Workers
from aptools.typing import is_async

__all__ = ["Handler", "handler_table"]


@dataclass(slots=True, frozen=True)
class Handler:
    """A registered function and how to call it."""

    fn: Callable[..., Any]
    effect: Callable[..., Effect]

    def __call__(self, *args: Any) -> Effect:
        return self.effect(self.fn, *args)


def handler_table(
    handlers: Mapping[str, Callable[..., Any]], offload: bool, threads: int | None
) -> dict[str, Handler]:
    """How to call each handler, decided once: an ``async def`` is awaited;
    a ``def`` runs in a worker thread under ASGI (the process's shared pool,
    or a pool of ``threads``) unless ``offload`` is false, and in place under WSGI.
    """
    blocking = (
        Blocking
        if threads is None
        else blocking_in(Workers(threads, name="aptools-handler"))
    )
    plain = blocking if offload else Call
    return {
        name: Handler(fn, Await if is_async(fn) else plain)
        for name, fn in handlers.items()
    }
