"""The benchmark report: markdown tables of a run's results, and every target
judged against the run's own figures."""

from __future__ import annotations

import math
from typing import Any

from .breakdown import breakdown_table


def report(results: dict[str, Any]) -> str:
    out = [f"# Benchmark results ({results['mode']} mode, {results['date']})", ""]
    out.append(
        "Machine and versions: "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    )
    if "inprocess" in results:
        out += [
            "",
            "## In-process cost per request (µs, median of rounds, min-max)",
            "",
            "The floor does no I/O (a dict); the same-I/O floor sends the SQLite",
            "statements aptools' SQLite store sends (`contenders/floor_sqlite.py`).",
            "",
            "| op | floor | same-I/O floor (SQLite) | aptools memory | aptools SQLite "
            "| Flask toolkit | memory/floor | SQLite/same-I/O floor "
            "| toolkit/aptools SQLite |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for op, by in results["inprocess"].items():
            cell = {k: f"{v['median']} ({v['min']}-{v['max']})" for k, v in by.items()}
            floor, mem = by["floor"]["median"], by["aptools-memory"]["median"]
            sql, flask = by["aptools-sqlite"]["median"], by["flask-toolkit"]["median"]
            same = by["floor-sqlite"]["median"]
            out.append(
                f"| {op} | {cell['floor']} | {cell['floor-sqlite']} | "
                f"{cell['aptools-memory']} | {cell['aptools-sqlite']} | "
                f"{cell['flask-toolkit']} | {mem / floor:.2f}x | {sql / same:.2f}x | "
                f"{flask / sql:.1f}x |"
            )
    if "breakdown" in results:
        out += breakdown_table(results["breakdown"])
    if "http" in results:
        out += [
            "",
            "## HTTP (wrk, 16 connections, server and wrk on separate cores)",
            "",
            "| contender | server | workers | op | req/s (min-max) | p50 ms | p99 ms "
            "| errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in results["http"]:
            out.append(
                f"| {row['contender']} | {row['server']} | {row['workers']} | "
                f"{row['op']} | {row['rps']:.0f} ({row['rps_min']:.0f}-"
                f"{row['rps_max']:.0f}) | {row['p50_ms']} | {row['p99_ms']} | "
                f"{row['errors']} |"
            )
    if "coldauth" in results:
        out += [
            "",
            "## Cold authentication (50 concurrent requests, one new token, "
            f"Globus Auth answering in {results['coldauth_latency_ms']} ms)",
            "",
            "| contender | server | workers | introspections | seconds | 2xx |",
            "|---|---|---|---|---|---|",
        ]
        for row in results["coldauth"]:
            out.append(
                f"| {row['contender']} | {row['server']} | {row['workers']} | "
                f"{row['introspections']} | {row['seconds']} | {row['ok']}/50 |"
            )
    if "scale" in results:
        out += [
            "",
            "## Scale: aptools on SQLite (in-process µs, median of rounds; the "
            "sizes alternated round by round)",
            "",
            "| stored actions | status µs (min-max) | run µs (min-max) |",
            "|---|---|---|",
        ]
        for row in results["scale"]["sqlite"]:
            status_low, status_high = row["status_range"]
            run_low, run_high = row["run_range"]
            out.append(
                f"| {row['actions']:,} | {row['status_us']} ({status_low}-"
                f"{status_high}) | {row['run_us']} ({run_low}-{run_high}) |"
            )
        out.append(
            f"\nMemory store: {results['scale']['memory_bytes_per_action']} bytes "
            "per action."
        )
    if "startup" in results:
        s = results["startup"]
        out += [
            "",
            "## Start-up",
            "",
            "| | import (s) | process wall (s) | peak MiB |",
            "|---|---|---|---|",
        ]
        for name in ("aptools", "flask-toolkit"):
            row = s[name]
            out.append(
                f"| `import {row['module']}` | {row['import_s']} | "
                f"{row['process_wall_s']} | {row['peak_mib']} |"
            )
        out.append(
            f"\nBuilding the echo provider's WSGI and ASGI apps: "
            f"{s['aptools_build_ms']} ms."
        )
    checks = against_targets(results)
    if checks:
        out += [
            "",
            "## Against the targets",
            "",
            "| target | measured | |",
            "|---|---|---|",
        ]
        out += [f"| {t} | {m} | {'met' if ok else 'not met'} |" for t, m, ok in checks]
    return "\n".join(out) + "\n"


def _rps(results: dict[str, Any], contender: str, server: str, op: str) -> float:
    for row in results["http"]:
        if (row["contender"], row["server"], row["workers"], row["op"]) == (
            contender,
            server,
            1,
            op,
        ):
            return float(row["rps"])
    return float("nan")


_STORES = {"memory": "memory", "sqlite": "SQLite"}


def against_targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Each target of the suite, what this run measured, and whether it is met."""
    checks: list[tuple[str, str, bool]] = []
    ops = ("introspect", "status", "run")
    if "inprocess" in results:
        med = {
            op: {name: v["median"] for name, v in by.items()}
            for op, by in results["inprocess"].items()
        }
        # Each store against the floor doing the same I/O: the bare floor for
        # the memory store, the SQLite floor for the SQLite store.
        limits = {
            ("introspect", "memory"): 1.3,
            ("introspect", "sqlite"): 1.3,
            ("status", "memory"): 1.3,
            ("status", "sqlite"): 1.3,
            ("run", "memory"): 1.5,
            ("run", "sqlite"): 1.15,
        }
        for (op, store), limit in limits.items():
            floor = "floor-sqlite" if store == "sqlite" else "floor"
            ratio = med[op][f"aptools-{store}"] / med[op][floor]
            against = "the same-I/O floor" if store == "sqlite" else "the floor"
            checks.append(
                (
                    f"in-process {op}, {_STORES[store]} store: ≤ {limit}x {against}",
                    f"{ratio:.2f}x",
                    ratio <= limit,
                )
            )
        for op in ops:
            for store in ("memory", "sqlite"):
                times = med[op]["flask-toolkit"] / med[op][f"aptools-{store}"]
                checks.append(
                    (
                        f"in-process {op}, {_STORES[store]} store: ≥ 10x faster "
                        "than the Flask toolkit",
                        f"{times:.1f}x",
                        times >= 10,
                    )
                )
    if "http" in results:
        for op in ops:
            for contender, floor_name in (
                ("aptools", "floor-sqlite"),
                ("aptools-memory", "floor"),
            ):
                floor = _rps(results, floor_name, "uvicorn", op)
                share = _rps(results, contender, "uvicorn", op) / floor
                if math.isnan(share):  # not measured in this run
                    continue
                store = "memory" if contender.endswith("memory") else "SQLite"
                checks.append(
                    (
                        f"uvicorn 1 worker, {op}, {store} store: ≥ 90% of the "
                        "same-I/O floor's req/s",
                        f"{share:.0%}",
                        share >= 0.9,
                    )
                )
        for op in ops:
            toolkit = _rps(results, "flask-toolkit", "gunicorn", op)
            times = _rps(results, "aptools", "gunicorn", op) / toolkit
            floor = _rps(results, "floor", "gunicorn", op) / toolkit
            checks.append(
                (
                    f"gunicorn 1 worker, {op}: ≥ 5x the Flask toolkit's req/s",
                    f"{times:.1f}x (the floor: {floor:.1f}x)",
                    times >= 5,
                )
            )
    if "coldauth" in results:
        checks += [
            (
                f"cold authentication, {row['server']} {row['workers']} "
                "worker(s): one introspection per new token",
                f"{row['introspections']} introspection(s), {row['ok']}/50 answered",
                row["introspections"] == 1 and row["ok"] == 50,
            )
            for row in results["coldauth"]
            if row["contender"] == "aptools"
        ]
    if "scale" in results:
        rows = results["scale"]["sqlite"]
        first, last = rows[0], rows[-1]
        ratio = last["status_us"] / first["status_us"]
        checks.append(
            (
                f"status at {last['actions']:,} stored actions within 1.3x of "
                f"{first['actions']:,}",
                f"{last['status_us']} µs vs {first['status_us']} µs ({ratio:.2f}x)",
                ratio <= 1.3,
            )
        )
    if "startup" in results:
        row = results["startup"]["aptools"]
        checks.append(
            (
                "`import aptools`: ≤ 0.35 s and ≤ 40 MiB",
                f"{row['import_s']} s, {row['peak_mib']} MiB",
                row["import_s"] <= 0.35 and row["peak_mib"] <= 40,
            )
        )
    return checks
