"""N run requests, each followed by a status request, in process (WSGI), for
counting instructions under callgrind; the per-request cost is the
difference between two counts, with N and with 0 requests, so start-up and
imports drop out.

    valgrind --tool=callgrind python -m benchmarks.instructions_pairs -n 400
    valgrind --tool=callgrind python -m benchmarks.instructions_pairs -n 0

``--rate RUNS/SECONDS`` sets ``max_runs_per_caller`` (large enough never to
refuse); ``--store`` picks the store (``memory:`` by default).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import falcon.testing

from aptools import Provider
from aptools.testing import FakeGlobusAuth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=400, help="run + status pairs")
    parser.add_argument("--rate", default="", help="max_runs_per_caller, RUNS/SECONDS")
    parser.add_argument("--store", default="memory:", help="memory: or sqlite")
    args = parser.parse_args()
    rate = None
    if args.rate:
        runs, _, seconds = args.rate.partition("/")
        rate = (int(runs), float(seconds))
    with FakeGlobusAuth() as auth, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(auth.env())
        alice = auth.identity("alice@example.org")
        store = args.store if args.store == "memory:" else f"sqlite:///{tmp}/b.db"
        provider = Provider(
            title="Instructions",
            scope=auth.scope,
            admin_contact="admin@example.org",
            input_schema={"type": "object"},
            store=store,
            prefix="/b",
            # Under valgrind the fake Globus Auth answers slowly.
            auth_timeout=120.0,
            max_runs_per_caller=rate,
        )
        provider.run(lambda request, caller: {"ok": True})
        client = falcon.testing.TestClient(provider.wsgi())
        headers = {"Authorization": f"Bearer {alice.token}"}
        # Warm: the token's introspection is cached from here on.
        body = {"request_id": "warm", "body": {}}
        assert (
            client.simulate_post("/b/run", json=body, headers=headers).status
            == "202 Accepted"
        )
        for k in range(args.n):
            body = {"request_id": f"r{k}", "body": {}}
            ran = client.simulate_post("/b/run", json=body, headers=headers)
            assert ran.status_code == 202, ran.text
            path = f"/b/{ran.json['action_id']}/status"
            assert client.simulate_get(path, headers=headers).status_code == 200


if __name__ == "__main__":
    main()
