"""End to end under uvicorn: blocking ``def`` handlers run in the worker
threads, several at once, and never stall the event loop.

ASGI only: under gunicorn each request has a thread (or a worker) of its own
and there is no loop to stall; the WSGI face calls handlers in place
(tests/test_run.py covers both faces in process).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aptools.testing import FakeGlobusAuth, FakeIdentity

from .servers import Server

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["memory:", "sqlite"])
def sleepy(
    request: pytest.FixtureRequest, auth: FakeGlobusAuth, tmp_path: Path
) -> Iterator[Server]:
    store = (
        request.param if request.param == "memory:" else f"sqlite:///{tmp_path}/a.db"
    )
    with Server("uvicorn", "tests.sleepy_app", "/sleepy", auth, store) as server:
        yield server


def test_blocking_handlers_run_at_once_and_the_loop_keeps_answering(
    sleepy: Server, alice: FakeIdentity
) -> None:
    # Warm the token cache, so that no request below waits on Globus Auth.
    warm = {"request_id": "warm", "body": {"seconds": 0}}
    assert sleepy.call("POST", "/run", alice.token, json=warm).status_code == 202

    def slow(n: int) -> tuple[int, float]:
        doc = {"request_id": f"slow-{n}", "body": {"seconds": 1.5}}
        answer = sleepy.call("POST", "/run", alice.token, json=doc)
        return answer.status_code, time.monotonic()

    with ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        runs = [pool.submit(slow, n) for n in range(4)]
        time.sleep(0.3)  # the four handlers are sleeping in their threads now
        asked = time.monotonic()
        about = sleepy.call("GET", "/")
        answered = time.monotonic()
        results = [run.result() for run in runs]
    assert about.status_code == 200
    assert all(code == 202 for code, _ in results), results
    # Every run had blocked for 1.5 s when the introspection came and went.
    slowest = max(done for _, done in results)
    assert answered < slowest - 0.5, (answered - asked, slowest - started)
    # Four handlers blocked at once: not one after another (4 x 1.5 s).
    assert slowest - started < 4.5, slowest - started
