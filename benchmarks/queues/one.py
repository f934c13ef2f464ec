"""One measurement of one contender, in a process of its own (the driver's child).

    python -m benchmarks.queues.one MODULE fill PLACE JOBS
    python -m benchmarks.queues.one MODULE drain PLACE JOBS AT_ONCE   -> seconds
    python -m benchmarks.queues.one MODULE latency PLACE RUNS AT_ONCE -> JSON
    python -m benchmarks.queues.one MODULE submit PLACE RUNS   (another process)

``latency`` serves, accepts ``RUNS`` jobs itself one at a time (10 ms
apart), then has another process (``submit``) accept ``RUNS`` more; each
latency is from the accepting call returned (job committed) to the job
entered, both on the system-wide monotonic clock.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import threading
import time
from typing import Any


def _module(name: str) -> Any:
    return importlib.import_module(f"benchmarks.queues.{name}")


def _latency(name: str, place: str, runs: int, at_once: int) -> dict[str, list[float]]:
    contender = _module(name)
    entered: dict[str, float] = {}
    seen = threading.Condition()

    def mark(key: str) -> None:
        at = time.monotonic()
        with seen:
            entered[key] = at
            seen.notify_all()

    halt = contender.serve(place, at_once, mark)
    try:
        local = []
        for k in range(runs):
            key = f"l{k:06d}"
            contender.submit(place, key)
            sent = time.monotonic()
            with seen:
                seen.wait_for(lambda key=key: key in entered, timeout=30)
            local.append((entered.get(key, float("inf")) - sent) * 1e3)
            time.sleep(0.01)
        other = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.queues.one",
                name,
                "submit",
                place,
                str(runs),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        sent_at = dict(
            (key, float(at))
            for key, at in (line.split() for line in other.stdout.split("\n") if line)
        )
        with seen:
            seen.wait_for(lambda: all(k in entered for k in sent_at), timeout=30)
        remote = [
            (entered.get(k, float("inf")) - at) * 1e3 for k, at in sent_at.items()
        ]
    finally:
        halt()
    return {"local": local, "remote": remote}


def _submit(name: str, place: str, runs: int) -> None:
    contender = _module(name)
    contender.submit(place, "warm-up")
    for k in range(runs):
        key = f"r{k:06d}"
        contender.submit(place, key)
        print(key, time.monotonic(), flush=True)
        time.sleep(0.02)


def main() -> None:
    name, command, place, count, *rest = sys.argv[1:]
    n = int(count)
    if command == "fill":
        _module(name).fill(place, n)
    elif command == "drain":
        print(_module(name).drain(place, n, int(rest[0])))
    elif command == "latency":
        print(json.dumps(_latency(name, place, n, int(rest[0]))))
    elif command == "submit":
        _submit(name, place, n)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    import os

    os._exit(0)  # consumers' daemon threads left as they are
