"""HTTP throughput and latency with wrk, and cold authentication."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from aptools.testing import FakeGlobusAuth

from .environments import Server, pin

RUN_SCRIPT = """
math.randomseed(os.time())
local prefix = tostring(math.random(1, 1000000000))
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"request_id": "w' .. prefix .. '-' .. counter ..
    '", "body": {"input_string": "hello"}}'
  return wrk.format("POST", nil, nil, body)
end
"""


def _unit(value: str, unit: str) -> float:
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
    return float(value) * scale[unit]


def wrk(
    url: str,
    token: str,
    seconds: float,
    connections: int,
    script: str | None,
    core: int | None,
) -> dict[str, Any]:
    command = [
        *pin(core),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {token}",
        "-H",
        "Content-Type: application/json",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        if script:
            path = Path(tmp) / "script.lua"
            path.write_text(script)
            command += ["-s", str(path)]
        out = subprocess.run(
            [*command, url], capture_output=True, text=True, timeout=seconds + 60
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))

    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
        return round(_unit(value, unit), 3)

    errors = 0
    for pattern in (
        r"Non-2xx or 3xx responses: (\d+)",
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    ):
        found = re.search(pattern, out)
        if found:
            errors += sum(int(g) for g in found.groups())
    return {
        "rps": rps,
        "p50_ms": ms(lat["50"]),
        "p99_ms": ms(lat["99"]),
        "errors": errors,
    }


def throughput(
    auth: FakeGlobusAuth,
    token: str,
    env: dict[str, str],
    seconds: float,
    configs: list[tuple[str, str, int]],
    repeats: int,
) -> list[dict[str, Any]]:
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed: apt-get install wrk (or run with --skip http)"
        )
    rows = []
    for contender, face, workers in configs:
        with Server(contender, face, workers, env, core=1) as server:
            headers = {"Authorization": f"Bearer {token}"}
            run = requests.post(
                server.base + "/run",
                headers=headers,
                timeout=10,
                json={"request_id": "http-seed", "body": {"input_string": "x"}},
            )
            run.raise_for_status()
            action_id = run.json()["action_id"]
            for _ in range(3):  # warm every worker's token cache
                requests.get(
                    f"{server.base}/{action_id}/status", headers=headers, timeout=10
                )
            for op, url, script in (
                ("introspect", server.base + "/", None),
                ("status", f"{server.base}/{action_id}/status", None),
                ("run", server.base + "/run", RUN_SCRIPT),
            ):
                runs = [
                    wrk(url, token, seconds, 16, script, core=0) for _ in range(repeats)
                ]
                rps = sorted(r["rps"] for r in runs)
                rows.append(
                    {
                        "contender": contender,
                        "server": "gunicorn" if face == "wsgi" else "uvicorn",
                        "workers": workers,
                        "op": op,
                        "rps": rps[len(rps) // 2],
                        "rps_min": rps[0],
                        "rps_max": rps[-1],
                        "p50_ms": sorted(r["p50_ms"] for r in runs)[len(runs) // 2],
                        "p99_ms": sorted(r["p99_ms"] for r in runs)[len(runs) // 2],
                        "errors": sum(r["errors"] for r in runs),
                    }
                )
    return rows


def cold_auth(
    auth: FakeGlobusAuth,
    env: dict[str, str],
    configs: list[tuple[str, str, int]],
    latency: float,
) -> list[dict[str, Any]]:
    """50 concurrent requests with one never-seen token: introspections and time."""
    identity = auth.identity("cold@example.org")
    rows = []
    auth.latency = latency
    try:
        for contender, face, workers in configs:
            with Server(contender, face, workers, env, core=1) as server:
                token = auth.token(identity)
                before = auth.calls["introspect"]

                def one(n: int, base: str = server.base, token: str = token) -> int:
                    return requests.post(
                        base + "/run",
                        headers={"Authorization": f"Bearer {token}"},
                        json={"request_id": f"cold-{n}", "body": {"input_string": "x"}},
                        timeout=60,
                    ).status_code

                started = time.perf_counter()
                with ThreadPoolExecutor(50) as pool:
                    codes = list(pool.map(one, range(50)))
                elapsed = time.perf_counter() - started
                rows.append(
                    {
                        "contender": contender,
                        "server": "gunicorn" if face == "wsgi" else "uvicorn",
                        "workers": workers,
                        "introspections": auth.calls["introspect"] - before,
                        "seconds": round(elapsed, 3),
                        "ok": sum(200 <= c < 300 for c in codes),
                    }
                )
    finally:
        auth.latency = 0.0
    return rows
