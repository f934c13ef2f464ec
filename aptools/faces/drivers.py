"""Drivers: run an operation to its end, performing its effects in place
(WSGI) or on the event loop (ASGI).

An effect that fails with an :class:`Exception` is thrown back into the
operation, which may handle it. Anything else (``asyncio.CancelledError`` of a
cancelled request task, ``KeyboardInterrupt``, ``SystemExit``) ends the
request: the driver *closes* the operation — its clean-up runs at once, under
``GeneratorExit``, without yielding — and lets the exception go on.
"""

from __future__ import annotations

from typing import Any

from aptools.protocol.effects import Op, T


def drive(op: Op[T]) -> T:
    """Run an operation to its end, performing each effect in place."""
    send: Any = None
    error: Exception | None = None
    while True:
        try:
            effect = op.send(send) if error is None else op.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            send, error = effect.run(), None
        except Exception as exc:
            send, error = None, exc
        except BaseException:
            op.close()
            raise


async def drive_async(op: Op[T]) -> T:
    """:func:`drive` for the event loop."""
    send: Any = None
    error: Exception | None = None
    while True:
        try:
            effect = op.send(send) if error is None else op.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            send, error = await effect.run_async(), None
        except Exception as exc:
            send, error = None, exc
        except BaseException:
            op.close()
            raise
