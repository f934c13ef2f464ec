"""Start-up: importing the package and building an app."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from .environments import ROOT, flask_python

# VmHWM is the process's own peak resident size (ru_maxrss would carry the
# parent's from before exec).
_PROBE = (
    "import time; t = time.perf_counter(); import {module}; "
    "w = time.perf_counter() - t; "
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
    "print(w, hwm.split()[1])"
)


def import_cost(python: str, module: str, repeats: int) -> dict[str, Any]:
    walls, imports, peaks = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        out = subprocess.run(
            [python, "-c", _PROBE.format(module=module)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        walls.append(time.perf_counter() - started)
        imports.append(float(out[0]))
        peaks.append(int(out[1]) / 1024)
    mid = repeats // 2
    return {
        "module": module,
        "process_wall_s": round(sorted(walls)[mid], 3),
        "import_s": round(sorted(imports)[mid], 3),
        "peak_mib": round(sorted(peaks)[mid], 1),
    }


def startup(repeats: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "aptools": import_cost(sys.executable, "aptools", repeats),
        "flask-toolkit": import_cost(
            flask_python(), "globus_action_provider_tools.flask", repeats
        ),
    }
    from .contenders.aptools_app import build

    builds = []
    for _ in range(repeats):
        started = time.perf_counter()
        provider = build("memory:")
        provider.wsgi()
        provider.asgi()
        builds.append(time.perf_counter() - started)
    result["aptools_build_ms"] = round(sorted(builds)[repeats // 2] * 1e3, 2)
    return result
