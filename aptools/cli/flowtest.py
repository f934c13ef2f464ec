"""``aptools flowtest``: drive a provider as Globus Flows does, and report
every departure from the Action Provider Interface met on the way.

The walk: introspect (and its CORS), run with a ``request_id`` (sent again,
unchanged, on a timeout or a 5xx), the same run again (the same action must
answer), an unknown action and, with ``--other-token``, someone else's view
of this one (404 both), status polled with a backoff doubling from 1 s to
10 minutes (``--backoff-scale`` shrinks it), a consent round trip when the
action stops INACTIVE for one, release, and status after release (404).
What each answer is held to is in :mod:`aptools.cli.conformance`.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

from aptools.backoff import pauses
from aptools.cli.call import (
    EXIT_INACTIVE,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    Client,
    note,
    read_body,
    route,
)
from aptools.cli.common import EXIT_ERROR, CommandError
from aptools.cli.conformance import (
    check_cors,
    check_description,
    check_error,
    check_status,
    consent_scope,
)
from aptools.schema import example_for
from aptools.vocabulary import INACTIVE, TERMINAL

if TYPE_CHECKING:
    import requests

__all__ = ["add_parser", "flowtest"]

HELP = "drive a provider as Globus Flows does; report departures from the interface"

#: Flows' status polling: the first pause and the longest, in seconds.
POLL_FIRST: Final = 1.0
POLL_CAP: Final = 600.0
#: Answers a run or a status is sent again after, unchanged ...
SERVER_ERRORS: Final = frozenset(range(500, 600))
#: ... this many times in all (35.5 s of pauses at scale 1).
TRIES: Final = 8
#: Where a browser's request comes from, for the CORS checks.
ORIGIN: Final = "https://app.globus.org"

EPILOG = f"""\
Departures go to standard output, one line each; progress to standard error.
exit status: 0 no departure; 1 departures (or the run was refused);
2 a usage error; {EXIT_INACTIVE} the action waits for a consent and standard
input closed; {EXIT_TIMEOUT} --timeout passed; {EXIT_UNREACHABLE} nothing
answered at URL."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "flowtest",
        help=HELP,
        description="Drive the provider at URL (e.g. http://host/skeleton) "
        "through one action as Globus Flows does, reporting every departure "
        "from the Action Provider Interface.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", help="the provider's base URL")
    parser.add_argument("--token", required=True, help="a Globus Auth access token")
    parser.add_argument(
        "--other-token",
        help="a token of another identity: the action must be 404 to it",
    )
    parser.add_argument(
        "--body",
        help="the action's body: JSON, or @file (default: an example made "
        "from the input schema)",
    )
    parser.add_argument(
        "--backoff-scale",
        type=_positive,
        default=1.0,
        metavar="F",
        help="multiply every pause by F (default 1: 1 s doubling to 10 min)",
    )
    parser.add_argument(
        "--timeout", type=_positive, metavar="S", help="seconds to wait in all"
    )
    parser.add_argument(
        "--request-timeout",
        type=_positive,
        default=60.0,
        metavar="S",
        help="seconds one request may take before it is sent again (default 60)",
    )
    parser.add_argument(
        "--api",
        choices=("1.0", "1.1"),
        default="1.0",
        help="the interface's routes to use (default 1.0: /run, /ID/status, "
        "as Globus Flows calls them)",
    )
    parser.set_defaults(func=flowtest)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("a number above 0")
    return value


def flowtest(args: argparse.Namespace) -> int:
    """Walk one action through the provider; 0 when nothing departed."""
    body = None if args.body is None else read_body(args.body)  # before any call
    walk = _Walk(args, body)
    try:
        walk.run()
    except CommandError:
        if walk.departures:  # then the reason it stopped, on a line of its own
            walk.summary()
        raise
    walk.summary()
    return EXIT_ERROR if walk.departures else 0


class _Walk:
    def __init__(self, args: argparse.Namespace, body: Any) -> None:
        self.args = args
        self.body = body
        self.api: str = args.api
        self.client = self._client(args.token)
        self.other = (
            None if args.other_token is None else self._client(args.other_token)
        )
        self.departures: list[str] = []

    def _client(self, token: str) -> Client:
        return Client(
            self.args.url,
            token,
            self.args.timeout,
            backoff_scale=self.args.backoff_scale,
            request_timeout=self.args.request_timeout,
        )

    # -- recording -------------------------------------------------------------

    def summary(self) -> None:
        count = len(self.departures)
        said = "no departure" if not count else f"{count} departure(s)"
        note(f"aptools flowtest: {said} from the Action Provider Interface")

    def depart(self, lines: list[str]) -> None:
        for line in lines:
            if line not in self.departures:
                self.departures.append(line)
                print(line, flush=True)

    def expect(
        self,
        where: str,
        response: requests.Response,
        expected: Collection[int],
        why: str = "",
    ) -> Any:
        """The answer's JSON (None if not JSON), noting an unexpected status
        and an error body that is not the interface's."""
        try:
            doc = response.json()
        except ValueError:
            doc = None
        status = response.status_code
        if status not in expected:
            wanted = " or ".join(str(s) for s in sorted(expected))
            self.depart([f"{where}: answered HTTP {status} ({wanted} expected{why})"])
        if status >= 400:
            self.depart(check_error(status, doc, where))
        elif doc is None:
            self.depart([f"{where}: the HTTP {status} answer is not JSON"])
        return doc

    def path(self, operation: str, action_id: str | None = None) -> tuple[str, str]:
        return route(operation, action_id, self.api)

    # -- the walk ------------------------------------------------------------------

    def run(self) -> None:
        about = self.introspect()
        if about is None:
            return
        body = self.body
        if body is None:
            body = example_for(about.get("input_schema") or {})
        self.refusals(body)
        doc = self.start(body, bool(about.get("synchronous")))
        if doc is None:
            return
        action_id = doc["action_id"]
        self.strangers(action_id)
        doc = self.follow(doc)
        self.finish(action_id, doc)

    def introspect(self) -> Mapping[str, Any] | None:
        method, path = self.path("introspect")
        response = self.client.exchange(method, path, headers={"Origin": ORIGIN})
        about = self.expect("introspect", response, {200})
        self.depart(check_description(about))
        self.depart(check_cors(response.headers, "introspect"))
        preflight = self.client.exchange(
            "OPTIONS",
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Authorization": None,
            },
        )
        if not 200 <= preflight.status_code < 300:
            self.depart(
                [f"introspect: OPTIONS answered HTTP {preflight.status_code} (2xx)"]
            )
        self.depart(check_cors(preflight.headers, "introspect: OPTIONS"))
        if response.status_code != 200 or not isinstance(about, Mapping):
            return None
        kind = "synchronous" if about.get("synchronous") else "asynchronous"
        note(f"introspect: {about.get('title')!s} ({kind})")
        return about

    def refusals(self, body: Any) -> None:
        """A run without a token (401) and one without a body (400 or 422)."""
        method, path = self.path("run")
        document = {"request_id": str(uuid.uuid4()), "body": body}
        anonymous = self.client.exchange(
            method, path, json=document, headers={"Authorization": None}
        )
        self.expect("run without a token", anonymous, {401})
        shapeless = self.client.exchange(
            method, path, json={"request_id": str(uuid.uuid4())}
        )
        self.expect("run without a body", shapeless, {400, 422})

    def start(self, body: Any, synchronous: bool) -> Mapping[str, Any] | None:
        method, path = self.path("run")
        document = {
            "request_id": str(uuid.uuid4()),
            "body": body,
            "label": "aptools flowtest",
        }
        # Sent again unchanged on a timeout or a 5xx, as Flows does: the
        # request_id makes it safe.
        response = self.client.exchange(
            method, path, json=document, retry=True, retried=SERVER_ERRORS, tries=TRIES
        )
        why = "; 200 is for a repeated request" if response.status_code == 200 else ""
        doc = self.expect("run", response, {202}, why)
        if response.status_code >= 400:
            said = doc.get("description") if isinstance(doc, Mapping) else None
            raise CommandError(
                f"the run was refused (HTTP {response.status_code})"
                + (f": {said}" if isinstance(said, str) else "")
            )
        self.depart(check_status(doc, "run"))
        if not (isinstance(doc, Mapping) and isinstance(doc.get("action_id"), str)):
            return None
        note(f"run: action {doc['action_id']} {doc.get('status')}")
        if synchronous and doc.get("status") not in TERMINAL:
            self.depart(
                ["run: the provider is synchronous but the action has not ended"]
            )
        again = self.client.exchange(
            method, path, json=document, retry=True, retried=SERVER_ERRORS, tries=TRIES
        )
        repeat = self.expect("run repeated", again, {200}, " for a repeated request")
        if isinstance(repeat, Mapping) and again.status_code < 400:
            self.depart(check_status(repeat, "run repeated"))
            if repeat.get("action_id") != doc["action_id"]:
                self.depart(["run repeated: answered another action, not the same one"])
        return doc

    def strangers(self, action_id: str) -> None:
        """An unknown action, and this one seen by another identity: 404."""
        method, path = self.path("status", str(uuid.uuid4()))
        self.expect(
            "status of an unknown action", self.client.exchange(method, path), {404}
        )
        if self.other is not None:
            method, path = self.path("status", action_id)
            seen = self.other.exchange(method, path)
            self.expect(
                "status by another identity",
                seen,
                {404},
                ": an action one may not see is unknown",
            )

    def follow(self, doc: Mapping[str, Any]) -> Mapping[str, Any]:
        """Poll until the action ends, resuming after a consent."""
        action_id = doc["action_id"]
        scale = self.args.backoff_scale
        waits = pauses(POLL_FIRST * scale, POLL_CAP * scale)
        while doc.get("status") not in TERMINAL:
            if doc.get("status") == INACTIVE and (scope := consent_scope(doc)):
                doc = self.resume(action_id, scope)
                waits = pauses(POLL_FIRST * scale, POLL_CAP * scale)
                continue
            shown = doc.get("display_status") or ""
            note(f"  {doc.get('status')} {shown}".rstrip())
            self.client.sleep(next(waits))
            method, path = self.path("status", action_id)
            response = self.client.exchange(
                method, path, retry=True, retried=SERVER_ERRORS, tries=TRIES
            )
            fresh = self.expect("status", response, {200})
            if response.status_code != 200 or not isinstance(fresh, Mapping):
                raise CommandError(f"status of action {action_id} failed")
            self.depart(check_status(fresh, "status"))
            if fresh.get("action_id") != action_id:
                self.depart(["status: answered another action_id"])
            doc = fresh
        note(f"  {doc.get('status')}")
        return doc

    def resume(self, action_id: str, scope: str) -> Mapping[str, Any]:
        note(
            f"action {action_id} is INACTIVE: consent needed for scope: {scope}\n"
            "  consent (as Globus Flows would ask), then press Enter to resume"
        )
        if not sys.stdin.readline():
            raise CommandError(
                f"action {action_id} waits for a consent to {scope}; "
                "standard input closed before it was given",
                EXIT_INACTIVE,
            )
        method, path = self.path("resume", action_id)
        response = self.client.exchange(
            method, path, retry=True, retried=SERVER_ERRORS, tries=TRIES
        )
        doc = self.expect("resume", response, {200})
        if response.status_code != 200 or not isinstance(doc, Mapping):
            raise CommandError(f"resume of action {action_id} failed")
        self.depart(check_status(doc, "resume"))
        note(f"resume: {doc.get('status')}")
        return doc

    def finish(self, action_id: str, doc: Mapping[str, Any]) -> None:
        """Release (another identity may not; the creator may), then 404."""
        method, path = self.path("release", action_id)
        if self.other is not None:
            refused = self.other.exchange(method, path)
            self.expect(
                "release by another identity",
                refused,
                {404},
                ": an action one may not see is unknown",
            )
        response = self.client.exchange(method, path)
        released = self.expect("release", response, {200})
        if response.status_code == 200:
            note(f"release: action {action_id} released")
            self.depart(check_status(released, "release"))
            ended = doc.get("status")
            if isinstance(released, Mapping) and released.get("status") != ended:
                self.depart(["release: answered another status than the action's"])
        method, path = self.path("status", action_id)
        gone = self.client.exchange(method, path)
        self.expect("status after release", gone, {404})
