"""Instructions per request, counted by callgrind: repeatable under any load.

``python -m benchmarks.instructions CONTENDER OP [-n N] [--base DIR]``
(``CONTENDER``: floor, floor-sqlite, aptools-memory, aptools-sqlite; ``OP``:
introspect, status, run). Needs valgrind (the distribution's package
``valgrind``). A fake Globus Auth runs in this process; the contender runs
in a child under ``valgrind --tool=callgrind``, which counts only the
measured loop (it runs inside ``functools.reduce``, the one function
collection is toggled on). ``--base DIR`` puts a directory holding another
``aptools`` package first on the child's path (a base commit, made with
``git archive <commit> aptools | tar -x -C DIR``). Prints the instructions
per request of ``N`` requests after a warm-up.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
from typing import Any

from .environments import ROOT

OPS = ("introspect", "status", "run")


def _child(name: str, op: str, n: int) -> None:
    import aptools

    # Valgrind runs the child some 50 times slower: give Globus Auth time.
    defaults: dict[str, Any] = aptools.Provider.__init__.__kwdefaults__
    defaults["auth_timeout"] = 300.0
    from .inprocess import PREFIX, build

    contender = build(name, os.environ["BENCH_TOKEN"])
    contender.measure(op, 300)  # warm
    if op == "run":
        items: list[Any] = [contender._run_body() for _ in range(n)]

        def step(_: Any, body: Any) -> Any:
            return contender.call("POST", PREFIX + "/run", body)
    else:
        path = PREFIX + "/"
        if op == "status":
            path = f"{PREFIX}/{contender.action_id}/status"
        items = list(range(n))

        def step(_: Any, __: Any) -> Any:
            return contender.call("GET", path)

    functools.reduce(step, items, None)


def count(name: str, op: str, n: int, base: str | None = None) -> int:
    """Instructions per request of ``op`` on contender ``name``."""
    from aptools.testing import FakeGlobusAuth

    from .contenders.common import SCOPE

    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeGlobusAuth(scope=SCOPE) as auth,
        auth.environment(),
    ):
        path = [str(ROOT)] if base is None else [base, str(ROOT)]
        env = {
            **os.environ,
            "BENCH_CHILD": "1",
            "BENCH_SCOPE": SCOPE,
            "BENCH_TOKEN": auth.identity("bench@example.org").token,
            "BENCH_SQLITE": f"sqlite:///{tmp}/instructions.db",
            "PYTHONPATH": os.pathsep.join(path),
        }
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                "--toggle-collect=functools_reduce",
                sys.executable,
                "-m",
                "benchmarks.instructions",
                name,
                op,
                "-n",
                str(n),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        with open(out) as made:
            for line in made:
                if line.startswith("summary:"):
                    return int(line.split()[1]) // n
    raise RuntimeError("callgrind wrote no summary")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("contender")
    parser.add_argument("op", choices=OPS)
    parser.add_argument("-n", type=int, default=500, help="requests counted")
    parser.add_argument("--base", help="a directory holding another aptools")
    args = parser.parse_args(argv)
    if os.environ.get("BENCH_CHILD"):
        _child(args.contender, args.op, args.n)
        return 0
    base = None if args.base is None else os.path.abspath(args.base)
    print(f"{args.contender} {args.op}: {count(args.contender, args.op, args.n, base)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
