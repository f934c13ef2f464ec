"""One fork-safety mechanism: per-process values and resets after a fork."""

from __future__ import annotations

import os
from collections.abc import Callable

from aptools.forks import PerProcess, after_fork, generation


def _in_child(report: Callable[[], str]) -> str:
    """What ``report()`` answers in a forked child."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, report().encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    said = os.read(read, 256).decode()
    os.close(read)
    os.close(write)
    return said


def test_a_per_process_value_is_made_anew_in_a_child() -> None:
    made: list[int] = []
    value = PerProcess(lambda: made.append(os.getpid()) or object())
    parent = value.get()
    assert value.get() is parent and value.current() is parent
    child = _in_child(
        lambda: f"{value.current() is None} {value.get() is parent} {made[-1]}"
    )
    none_at_first, same, maker = child.split()
    assert none_at_first == "True"  # the parent's value is not the child's
    assert same == "False"
    assert int(maker) != os.getpid()  # made in the child
    assert value.get() is parent  # the parent keeps its own


def test_generation_and_resets_follow_forks() -> None:
    seen: list[str] = []
    after_fork(lambda: seen.append("reset"))
    before = generation()
    assert _in_child(lambda: f"{generation() - before} {seen}") == "1 ['reset']"
    assert generation() == before and seen == []
