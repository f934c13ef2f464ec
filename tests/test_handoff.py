"""The pool blocking calls are handed to from the event loop (ASGI)."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time

import pytest

from aptools.protocol.effects import Blocking, blocking_in
from aptools.protocol.handoff import DEFAULT_SIZE, Workers, default_workers

_who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_a_call_runs_in_a_worker_thread_with_the_callers_context() -> None:
    pool = Workers(2)

    def where(x: int) -> tuple[int, str, str]:
        return x + 1, threading.current_thread().name, _who.get()

    async def main() -> tuple[int, str, str]:
        _who.set("alice")
        return await pool.call(where, 41)

    value, thread, who = asyncio.run(main())
    assert value == 42
    assert thread == "aptools-blocking-1"
    assert who == "alice"  # a copy of the request's context
    assert _who.get() == "nobody"


def test_an_exception_reaches_the_awaiter_and_the_thread_goes_on() -> None:
    pool = Workers(1)

    def fail() -> None:
        raise ValueError("no")

    async def main() -> int:
        with pytest.raises(ValueError, match="no"):
            await pool.call(fail)
        return await pool.call(lambda: 7)

    assert asyncio.run(main()) == 7
    assert pool.started == 1


def test_a_blocking_call_never_stalls_the_loop() -> None:
    pool = Workers(1)
    ticks: list[float] = []

    async def ticking() -> None:
        for _ in range(10):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main() -> None:
        started = time.monotonic()
        await asyncio.gather(pool.call(time.sleep, 0.5), ticking())
        # The loop ticked all along, long before the blocking call ended.
        assert ticks[-1] - started < 0.45

    asyncio.run(main())
    assert len(ticks) == 10


@pytest.mark.parametrize("size", [1, 3, 6])
def test_size_calls_block_at_once_and_no_more(size: int) -> None:
    pool = Workers(size)
    guard = threading.Lock()
    inside = [0, 0]  # now, most
    all_in = threading.Event()

    def block() -> None:
        with guard:
            inside[0] += 1
            inside[1] = max(inside[1], inside[0])
            if inside[0] == size:
                all_in.set()
        # Every call waits for `size` to be in at once, so a call queued
        # behind another would stall the lot until the timeout.
        assert all_in.wait(timeout=5)
        time.sleep(0.05)
        with guard:
            inside[0] -= 1

    async def main() -> float:
        started = time.monotonic()
        await asyncio.gather(*(pool.call(block) for _ in range(2 * size)))
        return time.monotonic() - started

    took = asyncio.run(main())
    assert inside == [0, size]
    assert pool.started == size
    assert took < 4  # nobody waited for the timeout


def test_threads_are_kept_and_reused() -> None:
    pool = Workers(4)

    async def main() -> set[str]:
        names = set()
        for _ in range(20):
            names.add(await pool.call(lambda: threading.current_thread().name))
        return names

    assert asyncio.run(main()) == {"aptools-blocking-1"}
    assert pool.started == 1


def test_a_call_cancelled_before_a_thread_takes_it_is_not_made() -> None:
    pool = Workers(1)
    release = threading.Event()
    made: list[str] = []

    async def main() -> None:
        first = pool.call(release.wait, 5)
        second = pool.call(made.append, "second")  # queued behind the first
        second.cancel()
        release.set()
        assert await first is True
        assert await pool.call(made.append, "third") is None

    asyncio.run(main())
    assert made == ["third"]


def test_a_result_for_a_closed_loop_is_dropped_and_the_thread_goes_on() -> None:
    pool = Workers(1)
    release = threading.Event()
    done = threading.Event()

    def slow() -> int:
        release.wait(5)
        done.set()
        return 1

    async def leave() -> None:
        pool.call(slow)  # nobody waits for it

    asyncio.run(leave())  # the loop is closed with the call running
    release.set()
    assert done.wait(5)

    async def again() -> int:
        return await pool.call(lambda: 2)

    assert asyncio.run(again()) == 2
    assert pool.started == 1


def test_calls_from_loops_in_several_threads_share_the_pool() -> None:
    pool = Workers(3)
    results: list[int] = []

    def one(n: int) -> None:
        async def main() -> int:
            return await pool.call(lambda: n * 2)

        results.append(asyncio.run(main()))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [n * 2 for n in range(8)]
    assert 1 <= pool.started <= 3


def test_a_forked_child_starts_with_no_thread_and_makes_its_own() -> None:
    pool = Workers(2)

    async def name() -> str:
        return await pool.call(lambda: f"{os.getpid()} {threading.get_ident()}")

    parent = asyncio.run(name())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            before = pool.started
            os.write(write, f"{before} {asyncio.run(name())}".encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    started, child_pid, _ = os.read(read, 256).decode().split()
    os.close(read)
    os.close(write)
    assert started == "0"  # the parent's thread is not the child's
    assert int(child_pid) == pid
    assert asyncio.run(name()).split()[0] == parent.split()[0]


def test_blocking_effects_use_the_shared_pool_or_their_own() -> None:
    own = Workers(1, name="mine")
    mine = blocking_in(own)

    async def main() -> tuple[str, str]:
        shared = await Blocking(lambda: threading.current_thread().name).run_async()
        given = await mine(lambda: threading.current_thread().name).run_async()
        return shared, given

    shared, given = asyncio.run(main())
    assert shared.startswith("aptools-blocking-")
    assert given == "mine-1"
    assert default_workers() is default_workers()
    assert default_workers().size == DEFAULT_SIZE == min(32, (os.cpu_count() or 1) + 4)


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        Workers(0)


def test_a_thread_that_cannot_start_fails_its_call_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = Workers(2)
    made: list[str] = []
    start = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    async def main() -> None:
        monkeypatch.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="can't start"):
            pool.call(made.append, "refused")
        monkeypatch.setattr(threading.Thread, "start", start)
        assert await pool.call(made.append, "later") is None

    asyncio.run(main())
    time.sleep(0.05)
    assert made == ["later"]  # the refused call never ran
    assert pool.started == 1
