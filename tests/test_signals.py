"""SIGTERM and the exit hook (aptools.signals): only in the process that
installed them, chained to the handler before, with an opt-out; and the
fork safety of PerProcess when another thread holds its lock at the fork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from aptools.forks import PerProcess

from .servers import ROOT


def script(code: str, tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (signals are process-wide)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


CHAINED = """
    import os, signal, sys, time
    from aptools import signals

    def note(text):
        with open("notes.txt", "a") as f:
            f.write(f"{os.getpid()} {text}\\n")

    signal.signal(signal.SIGTERM, lambda s, f: note("before"))
    signals.on_terminate(lambda: note("hook"))
    signals.on_exit(lambda: note("exit"))
    print(signals.install(), signals.installed())
    ready, said = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(said, b"up")
        time.sleep(30)  # ended by SIGTERM, as the default handler ends it
        os._exit(0)
    os.read(ready, 2)  # (a signal before the child's start would be lost)
    os.kill(child, signal.SIGTERM)
    _, status = os.waitpid(child, 0)
    print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, child)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)
    print(signals.terminated())
"""


def test_sigterm_runs_the_hooks_then_the_handler_before_only_where_installed(
    tmp_path: Path,
) -> None:
    got = script(CHAINED, tmp_path)
    assert got.returncode == 0, got.stderr
    installed, child_ended, terminated = got.stdout.split("\n")[:3]
    assert installed == "True True"
    ended, child = child_ended.split()
    # The child ended, running neither the hooks nor the parent's handler.
    assert ended == "True"
    notes = (tmp_path / "notes.txt").read_text().split("\n")
    assert not [n for n in notes if n.startswith(child)]
    me = notes[0].split()[0]
    assert me != child
    # The installer: the hook, then the handler before; the exit hook at exit.
    assert notes[:3] == [f"{me} hook", f"{me} before", f"{me} exit"]
    assert terminated == "True"


DEFAULT = """
    import os, signal
    from aptools import signals

    signals.on_exit(lambda: open("exited.txt", "w").write("yes"))
    signals.install()
    os.kill(os.getpid(), signal.SIGTERM)
    print("not reached")
"""


def test_with_the_default_handler_sigterm_runs_the_exit_hooks_then_ends(
    tmp_path: Path,
) -> None:
    got = script(DEFAULT, tmp_path)
    assert got.returncode == -signal.SIGTERM
    assert "not reached" not in got.stdout
    assert (tmp_path / "exited.txt").read_text() == "yes"


OPT_OUT = """
    import os, signal
    from aptools import signals

    mine = lambda s, f: print("the application's own")
    signal.signal(signal.SIGTERM, mine)
    signals.on_terminate(lambda: print("hook"))
    print(signals.install(), signal.getsignal(signal.SIGTERM) is mine)
    os.kill(os.getpid(), signal.SIGTERM)
    signals.terminate()  # what the application calls from its own handler
"""


def test_an_application_that_owns_its_signals_opts_out(tmp_path: Path) -> None:
    got = script(OPT_OUT, tmp_path, APTOOLS_SIGNALS="off")
    assert got.returncode == 0, got.stderr
    assert got.stdout.split("\n")[:3] == ["False True", "the application's own", "hook"]


def test_a_fork_while_another_thread_holds_a_per_process_lock(tmp_path: Path) -> None:
    parent = os.getpid()
    inside, go_on = threading.Event(), threading.Event()

    def make() -> int:
        if os.getpid() == parent:
            inside.set()
            go_on.wait(30)  # holds the value's lock meanwhile
        return os.getpid()

    value = PerProcess(make)
    holder = threading.Thread(target=value.get)
    holder.start()
    try:
        assert inside.wait(30)
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.write(write, str(value.get()).encode())
            finally:
                os._exit(0)
        os.close(write)
        give_up = time.monotonic() + 30
        while os.waitpid(child, os.WNOHANG) == (0, 0):
            if time.monotonic() > give_up:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
                raise AssertionError("the child's first get() hung")
            time.sleep(0.02)
        said = os.read(read, 64).decode()
        os.close(read)
    finally:
        go_on.set()
        holder.join(30)
    assert said == str(child)  # made in the child, by the child
    assert value.get() == parent
