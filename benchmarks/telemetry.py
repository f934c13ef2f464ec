"""What telemetry costs in process.

``python -m benchmarks.telemetry [--rounds R] [-n N]``.

The echo provider on the memory store, in three processes measured round by
round (alternating which goes first): OpenTelemetry not installed
(``otel-absent``), installed but not configured (``otel-idle``), and
recording with the SDK (``otel-on``). The first two build the same app (the
choice is made when it is built), so they differ by noise only; the third
says what a span and a histogram point per request cost. Median µs per
request over the rounds, with min-max.
"""

from __future__ import annotations

import argparse
import os
import sys

from aptools.testing import FakeGlobusAuth

from .contenders.common import SCOPE
from .run import Worker, _stats

CONTENDERS = ("otel-absent", "otel-idle", "otel-on")
OPERATIONS = ("introspect", "status", "run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.telemetry")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("-n", type=int, default=1000, help="requests per round")
    args = parser.parse_args(argv)
    auth = FakeGlobusAuth(scope=SCOPE).start()
    try:
        env = {
            **auth.env(),
            "BENCH_TOKEN": auth.identity("bench@example.org").token,
            "APTOOLS_STORE": "memory:",
        }
        os.environ.update(env)
        workers = [Worker([name], env) for name in CONTENDERS]
        samples: dict[str, dict[str, list[float]]] = {}
        try:
            for r in range(args.rounds):
                for op in OPERATIONS:
                    order = workers[r % 3 :] + workers[: r % 3]
                    for worker in order:
                        for name, us in worker.round(op, args.n).items():
                            samples.setdefault(op, {}).setdefault(name, []).append(us)
        finally:
            for worker in workers:
                worker.close()
    finally:
        auth.stop()
    print("| operation | " + " | ".join(CONTENDERS) + " |")
    print("|---|" + "---|" * len(CONTENDERS))
    for op in OPERATIONS:
        cells = []
        for name in CONTENDERS:
            got = _stats(samples[op][name])
            cells.append(f"{got['median']} µs ({got['min']}-{got['max']})")
        print(f"| {op} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
