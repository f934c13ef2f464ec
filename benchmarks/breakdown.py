"""Where an aptools request's time goes: a profile of each operation, grouped.

``python -m benchmarks.breakdown [-n N]`` (also a section of ``benchmarks.run``):
the echo provider's WSGI app is called in process, as the in-process section
calls it, on the memory and the SQLite store, first unprofiled (the µs per
request), then under ``cProfile``. Each function's own time (``tottime``) is
put in one part by where its code lives:

| part | code |
|---|---|
| authentication | `aptools/auth/`, the token cache, globus-sdk |
| validation | the compiled input schemas (fastjsonschema), `aptools/schema*.py` |
| idempotency | request keys, their claims and locks (`store/claims.py`) |
| serialization | orjson, `aptools/models.py`, `aptools/times.py` |
| store | the rest of `aptools/store/`, sqlite3 |
| server | Falcon, the WSGI face (`aptools/faces/`) |
| protocol | the rest of aptools (`aptools/protocol/`, settings, errors) |
| other | the standard library and the rest |
| harness | the measuring loop itself (`benchmarks/`), paid by the floors too |

The shares of the profile are applied to the unprofiled time: the profiler's
own cost per call is spread evenly, so parts made of many small calls read a
little high. Needs ``BENCH_TOKEN`` and a fake Globus Auth in the environment
(the runner sets them); run alone, it starts one.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
from typing import Any

PARTS = (
    "authentication",
    "validation",
    "idempotency",
    "serialization",
    "store",
    "server",
    "protocol",
    "other",
    "harness",
)
_NAMES = {
    "_fingerprint": "idempotency",
    "reserve": "idempotency",
}


def part_of(filename: str, function: str) -> str:
    """The part a function belongs to, from its code's file and its name."""
    path = filename.replace(os.sep, "/")
    if "/benchmarks/" in path:
        return "harness"
    if "orjson" in function:
        return "serialization"
    if "fcntl" in function:  # the claims file's locks
        return "idempotency"
    if "sqlite3.Connection" in function or "sqlite3.Cursor" in function:
        return "store"
    if path.startswith("<"):  # compiled at run time: schemas, dataclasses
        return "validation" if function.startswith("validate") else "other"
    if "/aptools/" in path:
        tail = path.rsplit("/aptools/", 1)[1]
        if function in _NAMES and ("operations/run" in tail or "store/" in tail):
            return _NAMES[function]
        if tail.startswith("auth/") or tail == "store/introspections.py":
            return "authentication"
        if tail == "store/claims.py":
            return "idempotency"
        if tail.startswith("schema"):
            return "validation"
        if tail in ("models.py", "times.py"):
            return "serialization"
        if tail.startswith("store/"):
            return "store"
        if tail.startswith("faces/"):
            return "server"
        return "protocol"
    if "/globus_sdk/" in path:
        return "authentication"
    if "/fastjsonschema/" in path:
        return "validation"
    if "/falcon/" in path:
        return "server"
    return "other"


def profile(contender: Any, op: str, n: int) -> dict[str, float]:
    """µs per request of ``op`` on ``contender``, split into :data:`PARTS`."""
    contender.measure(op, n)  # warm
    plain = min(contender.measure(op, n) for _ in range(3))
    profiler = cProfile.Profile()
    profiler.enable()
    contender.measure(op, n)
    profiler.disable()
    stats = pstats.Stats(profiler)
    spent = dict.fromkeys(PARTS, 0.0)
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        spent[part_of(filename, function)] += row[2]
    total = sum(spent.values()) or 1.0
    return {
        "us": round(plain, 2),
        **{k: round(plain * v / total, 2) for k, v in spent.items()},
    }


def breakdown(token: str, n: int) -> dict[str, dict[str, dict[str, float]]]:
    """For each store, each operation's µs per request and its parts."""
    from .inprocess import build

    found: dict[str, dict[str, dict[str, float]]] = {}
    before = os.environ.get("BENCH_SQLITE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BENCH_SQLITE"] = f"sqlite:///{tmp}/breakdown.db"
        try:
            for name in ("aptools-memory", "aptools-sqlite"):
                contender = build(name, token)
                found[name] = {
                    op: profile(contender, op, n)
                    for op in ("introspect", "status", "run")
                }
        finally:
            if before is None:
                del os.environ["BENCH_SQLITE"]
            else:
                os.environ["BENCH_SQLITE"] = before
    return found


def breakdown_table(found: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """The report's section: one row per store and operation."""
    out = [
        "",
        "## Where the time goes (in-process µs per request, from a profile)",
        "",
        "| store | op | total | " + " | ".join(PARTS) + " |",
        "|---|---|---|" + "---|" * len(PARTS),
    ]
    for name, ops in found.items():
        store = name.removeprefix("aptools-")
        for op, row in ops.items():
            parts = " | ".join(str(row[p]) for p in PARTS)
            out.append(f"| {store} | {op} | {row['us']} | {parts} |")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown")
    parser.add_argument("-n", type=int, default=2000, help="requests per measure")
    args = parser.parse_args(argv)
    from aptools.testing import FakeGlobusAuth

    from .contenders.common import SCOPE

    with FakeGlobusAuth(scope=SCOPE) as auth, auth.environment():
        token = auth.identity("bench@example.org").token
        os.environ["BENCH_SCOPE"] = SCOPE
        sys.stdout.write("\n".join(breakdown_table(breakdown(token, args.n))) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
