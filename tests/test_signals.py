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
    os.read(ready, 2)
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


def bounded(code: str, tmp: Path, bound: float) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in a session of its own; past
    ``bound`` seconds it and every process it forked are killed, and it failed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"hung past {bound} s; it said: {out[-400:]!r}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


AT_ONCE = """
    import os, signal, threading, time
    from aptools import signals

    mine = lambda s, f: None
    signal.signal(signal.SIGTERM, mine)  # the application's, before aptools'
    print(signals.install())

    def fork_and_kill(n, ended):
        for _ in range(n):
            child = os.fork()
            if child == 0:  # ended by SIGTERM before it wakes, or it says so
                time.sleep(2)
                os._exit(7)
            os.kill(child, signal.SIGTERM)  # at once: it may not have run yet
            _, status = os.waitpid(child, 0)
            ended.append(os.WIFSIGNALED(status) and os.WTERMSIG(status) == 15)

    ended = []
    fork_and_kill(10, ended)  # from the main thread
    thread = threading.Thread(target=fork_and_kill, args=(10, ended))
    thread.start()
    thread.join()
    print(ended.count(True), len(ended))
    # The parent keeps its handler, and SIGTERM unblocked in both threads.
    print(signal.getsignal(signal.SIGTERM) is signals._on_sigterm,
          signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, set()))
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        here = signal.getsignal(signal.SIGTERM)
        blocked = signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, set())
        os.write(write, f"{here == signal.SIG_DFL} {blocked}".encode())
        os._exit(0)
    os.waitpid(child, 0)
    print(os.read(read, 64).decode())
"""


def test_a_child_signalled_right_after_the_fork_ends(tmp_path: Path) -> None:
    # A SIGTERM that reaches a child before the interpreter's after-fork
    # reset is dropped if the child still has a Python-level handler: SIGTERM
    # stays blocked from before the fork until the child has the default one.
    got = bounded(AT_ONCE, tmp_path, 120)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split("\n")[:4] == ["True", "20 20", "True False", "True False"]


APPLICATION_OWN = """
    import os, signal
    from aptools import signals

    signals.install()
    mine = lambda s, f: os._exit(3)
    signal.signal(signal.SIGTERM, mine)  # the application's, over aptools'
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, str(signal.getsignal(signal.SIGTERM) is mine).encode())
        os._exit(0)
    os.waitpid(child, 0)
    print(os.read(read, 64).decode())
"""


def test_a_handler_the_application_set_is_the_childs_too(tmp_path: Path) -> None:
    for env in ({}, {"APTOOLS_SIGNALS": "off"}):
        got = script(APPLICATION_OWN, tmp_path, **env)
        assert got.returncode == 0, got.stderr
        assert got.stdout.split("\n")[0] == "True"


POOLS = """
    import multiprocessing, threading
    from aptools import signals

    print(signals.install(), flush=True)
    fork = multiprocessing.get_context("fork")
    totals, failures = [], []

    def one_pool():
        try:
            with fork.Pool(2) as pool:  # terminate() at the end: SIGTERM
                totals.append(sum(pool.map(abs, range(-5, 5))))
        except Exception as exc:
            failures.append(repr(exc))

    for n in range(100):
        threads = [threading.Thread(target=one_pool) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(n, end=" ", flush=True)
    print()
    print(totals.count(25), failures)
"""


def test_pools_opened_and_closed_in_threads_beside_the_handler_never_hang(
    tmp_path: Path,
) -> None:
    # Pool.terminate() signals workers that may not have run yet (a loaded
    # host): each must end, or the pool's close waits for it forever.
    got = bounded(POOLS, tmp_path, 120)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split("\n")[2] == "200 []"
