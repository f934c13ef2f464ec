"""Before and after in one run: the in-process worker, once with aptools of
a base checkout, once with this one, rounds alternated.

``python -m benchmarks.compare BASE [--rounds R] [-n N]``: ``BASE`` is a
directory holding the ``aptools`` package of the base commit (for example
``git archive <commit> aptools | tar -x -C /tmp/base``). The floors run in
the process of this checkout. Prints two markdown tables, the median and
the least of the rounds (the least is the steadier on a loaded machine):
µs per request and each store's ratio to its floor, before → after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from aptools.testing import FakeGlobusAuth

from .contenders.common import SCOPE
from .environments import ROOT

OPS = ("introspect", "status", "run")


class _Worker:
    def __init__(self, names: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.inprocess", *names],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.read()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("in-process worker died")
        found: dict[str, Any] = json.loads(line)
        return found

    def round(self, op: str, n: int) -> dict[str, float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{op} {n}\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def compare(base: str, rounds: int, n: int) -> list[str]:
    """The table's lines; each worker is measured every round, in turn."""
    samples: dict[tuple[str, str], list[float]] = {}
    with (
        FakeGlobusAuth(scope=SCOPE) as auth,
        auth.environment(),
        tempfile.TemporaryDirectory() as tmp,
    ):
        common = {
            **os.environ,
            "BENCH_TOKEN": auth.identity("bench@example.org").token,
            "BENCH_SCOPE": SCOPE,
        }
        now = _Worker(
            ["floor", "floor-sqlite", "aptools-memory", "aptools-sqlite"],
            {
                **common,
                "PYTHONPATH": str(ROOT),
                "BENCH_SQLITE": f"sqlite:///{tmp}/now.db",
            },
        )
        before = _Worker(
            ["aptools-memory", "aptools-sqlite"],
            {
                **common,
                "PYTHONPATH": os.pathsep.join([base, str(ROOT)]),
                "BENCH_SQLITE": f"sqlite:///{tmp}/base.db",
            },
        )
        workers = [("now", now), ("base", before)]
        try:
            for r in range(rounds):
                for op in OPS:
                    for tag, worker in workers if r % 2 == 0 else workers[::-1]:
                        for name, us in worker.round(op, n).items():
                            samples.setdefault((op, f"{name} {tag}"), []).append(us)
        finally:
            now.close()
            before.close()
    lines: list[str] = []
    for label, pick in (("median", _median), ("least", min)):
        lines += [
            "",
            f"{label} of rounds (µs per request):",
            "",
            "| op | floor | same-I/O floor | memory, base | memory, now "
            "| SQLite, base | SQLite, now | memory/floor | SQLite/same-I/O floor |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for op in OPS:
            m = {k[1]: pick(v) for k, v in samples.items() if k[0] == op}
            floor, same = m["floor now"], m["floor-sqlite now"]
            mb, mn = m["aptools-memory base"], m["aptools-memory now"]
            sb, sn = m["aptools-sqlite base"], m["aptools-sqlite now"]
            lines.append(
                f"| {op} | {floor:.2f} | {same:.2f} | {mb:.2f} | {mn:.2f} "
                f"| {sb:.2f} | {sn:.2f} | {mb / floor:.2f}x → {mn / floor:.2f}x "
                f"| {sb / same:.2f}x → {sn / same:.2f}x |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare")
    parser.add_argument("base", help="a directory holding the base aptools package")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("-n", type=int, default=500, help="requests per measure")
    args = parser.parse_args(argv)
    print("\n".join(compare(os.path.abspath(args.base), args.rounds, args.n)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
