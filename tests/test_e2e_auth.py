"""End to end: Globus Auth hanging while real gunicorn (2 sync workers) and
uvicorn serve, with introspections shared through SQLite."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from aptools.testing import FakeGlobusAuth, FakeIdentity

from .servers import Server

pytestmark = pytest.mark.e2e

#: The examples' auth_timeout (the Provider default), in seconds.
AUTH_TIMEOUT = 2.0


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_a_hang_is_answered_within_the_bound_and_shared(
    kind: str,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    bob: FakeIdentity,
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path}/actions.db"
    with Server(kind, "examples.watchasay.app", "/skeleton", auth, db) as server:
        # bob's token is introspected (and shared) before Globus Auth hangs.
        assert (
            server.call("GET", "/no-such-action/status", bob.token).status_code == 404
        )
        token = auth.token(alice)
        auth.hang()
        try:
            started = time.monotonic()

            def run(n: int, who: str) -> tuple[Any, float]:
                answer = requests.post(
                    server.url + "/run",
                    json={"request_id": f"r{n}", "body": {"input_string": "hi"}},
                    headers={"Authorization": f"Bearer {who}"},
                    timeout=30,
                )
                return answer, time.monotonic() - started

            with ThreadPoolExecutor(5) as pool:
                new = [pool.submit(run, n, token) for n in range(4)]
                time.sleep(0.2)  # the cached caller comes after them
                cached = pool.submit(run, 9, bob.token)
                answers = [f.result() for f in new]
                cached_answer, cached_after = cached.result()
            # Every answer within the bound: one auth timeout, and at most
            # one more behind a busy sync worker; never one per retry.
            bound = 2 * AUTH_TIMEOUT + 1.5
            for answer, after in answers:
                assert answer.status_code == 503, answer.text
                assert answer.json()["code"] == "AuthServiceUnavailable"
                assert answer.headers["Retry-After"] == "5"
                assert after < bound
            assert cached_answer.status_code == 202, cached_answer.text
            assert cached_after < bound
            # Let the introspection under way run out (globus-sdk retries it
            # once): no other worker or request asks Globus Auth again.
            time.sleep(3 * AUTH_TIMEOUT)
            assert 1 <= auth.introspected(token) <= 2
        finally:
            auth.recover()
        # Authenticated again once Globus Auth is back (a shared failure is
        # kept for at most one auth timeout).
        for _ in range(20):
            again = server.call("GET", "/no-such-action/status", token)
            if again.status_code != 503:
                break
            time.sleep(0.25)
        assert again.status_code == 404
