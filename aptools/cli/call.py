"""``aptools call``: a small client for any action provider (API 1.1 routes)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from aptools.backoff import pauses
from aptools.cli.common import EXIT_ERROR, EXIT_USAGE, CommandError, http_url
from aptools.vocabulary import ACTIVE, FAILED, INACTIVE, SUCCEEDED

if TYPE_CHECKING:
    import requests

__all__ = [
    "EXIT_INACTIVE",
    "EXIT_TIMEOUT",
    "EXIT_UNREACHABLE",
    "Client",
    "add_parser",
    "call",
    "note",
    "read_body",
    "route",
]

HELP = "call any provider: run, status, resume, enumerate, ..."

#: The action stopped INACTIVE (say, for consent): resume it, then wait again.
EXIT_INACTIVE: Final = 3
#: ``--timeout`` passed before the action ended.
EXIT_TIMEOUT: Final = 4
#: Nothing answered at the URL (connection refused, name unknown, no answer).
EXIT_UNREACHABLE: Final = 5

#: Seconds a single HTTP exchange may take, unless ``--timeout`` is shorter.
REQUEST_TIMEOUT: Final = 60.0
#: Answers worth trying again while waiting: the server is restarting or busy.
RETRIED: Final = frozenset({502, 503, 504})

EPILOG = f"""\
exit status: 0 done (the action SUCCEEDED, or the answer was 2xx);
1 an error answer, or the action FAILED; 2 a usage error;
{EXIT_INACTIVE} the action is INACTIVE (the scope to consent to is printed);
{EXIT_TIMEOUT} --timeout passed; {EXIT_UNREACHABLE} nothing answered at URL."""


def add_parser(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--token", required=True, help="a Globus Auth access token")
    common.add_argument(
        "--timeout",
        type=_seconds,
        help="seconds to wait in all (default: each request 60 s, waits unbounded)",
    )
    parser = commands.add_parser(
        "call",
        help=HELP,
        description="Call an action provider at URL, e.g. http://host/skeleton.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", help="the provider's base URL")
    operations = parser.add_subparsers(dest="operation", required=True)
    run = operations.add_parser("run", parents=[common], help="start an action")
    run.add_argument("--body", help="the action's body: JSON, or @file")
    run.add_argument("--request-id", help="run's request_id (default: random)")
    run.add_argument("--monitor-by", nargs="+", default=[], metavar="URN")
    run.add_argument("--manage-by", nargs="+", default=[], metavar="URN")
    for name, text in (
        ("status", "an action's status"),
        ("cancel", "cancel an action"),
        ("release", "release a finished action"),
        ("log", "an action's log"),
        ("resume", "resume an INACTIVE action (with a token carrying the consent)"),
    ):
        one = operations.add_parser(name, parents=[common], help=text)
        one.add_argument("action_id")
        if name == "log":
            one.add_argument("--limit", type=int)
    for waits in (run, operations.choices["resume"]):
        waits.add_argument(
            "--wait",
            action="store_true",
            help="poll until the action ends (retrying while the server restarts)",
        )
    listing = operations.add_parser(
        "enumerate", parents=[common], help="list your actions"
    )
    listing.add_argument("--status", help="e.g. ACTIVE,INACTIVE (default ACTIVE)")
    listing.add_argument(
        "--roles", help="e.g. creator_id,monitor_by (default creator_id)"
    )
    parser.set_defaults(func=call)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("a number of seconds above 0")
    return value


class Client:
    """HTTP to one provider at ``url`` (http or https: anything else is a
    usage error, :func:`~aptools.cli.common.http_url`), within one overall
    deadline (``timeout`` seconds, or none), each exchange within
    ``request_timeout`` seconds (60).
    ``backoff_scale`` multiplies every pause between retries (1: as written;
    tests pass less).

    Shared by ``call`` and ``flowtest``: :meth:`exchange` gives the raw
    answer, :meth:`send` its JSON or a :class:`CommandError`. Nothing that
    fails reaches the network twice unless asked (``retry``).
    """

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float | None,
        *,
        backoff_scale: float = 1.0,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        import requests

        self.base = http_url(url).rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.backoff_scale = backoff_scale
        self.request_timeout = request_timeout

    def left(self) -> float:
        """Seconds the next exchange may take; raises once ``timeout`` passed."""
        if self.deadline is None:
            return self.request_timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CommandError("--timeout passed", EXIT_TIMEOUT)
        return min(left, self.request_timeout)

    def send(self, method: str, path: str, *, retry: bool = False, **kw: Any) -> Any:
        """The JSON answer; retried with backoff while the server is away
        (``retry``, safe for reads and for run with its fixed request_id)."""
        return _answer(self.exchange(method, path, retry=retry, **kw))

    def exchange(
        self,
        method: str,
        path: str,
        *,
        retry: bool = False,
        retried: Collection[int] = RETRIED,
        tries: int | None = None,
        **kw: Any,
    ) -> requests.Response:
        """The answer to ``method path`` (``kw`` as :mod:`requests` takes
        them). With ``retry``, a request that got no answer in time, or an
        answer whose status is in ``retried``, is sent again after a pause that
        grows from 0.5 to 10 s (times ``backoff_scale``), ``tries`` times in
        all (unbounded if None: then only the deadline ends it); the last
        answer is returned. No answer at all (on the last try, or without
        ``retry``) raises :class:`CommandError` with :data:`EXIT_UNREACHABLE`."""
        import requests

        waits = pauses(0.5 * self.backoff_scale, 10.0 * self.backoff_scale)
        tried = 0
        while True:
            tried += 1
            last = tries is not None and tried >= tries
            try:
                response = self.session.request(
                    method, self.base + path, timeout=self.left(), **kw
                )
            except requests.RequestException as exc:
                if not retry or last:
                    raise CommandError(
                        _unreachable(self.base, exc), EXIT_UNREACHABLE
                    ) from None
                why = type(exc).__name__
            else:
                if last or not (retry and response.status_code in retried):
                    return response
                why = f"HTTP {response.status_code}"
            pause = next(waits)
            note(f"  {why}; trying again in {pause:g} s")
            self.sleep(pause)

    def sleep(self, seconds: float) -> None:
        """Sleep, but not past the deadline (then :data:`EXIT_TIMEOUT`)."""
        if self.deadline is not None:
            seconds = min(seconds, self.deadline - time.monotonic())
            if seconds <= 0:
                raise CommandError("--timeout passed", EXIT_TIMEOUT)
        time.sleep(seconds)


def _unreachable(base: str, exc: Exception) -> str:
    import requests

    if isinstance(exc, requests.Timeout):
        return f"no answer from {base} in time"
    return f"cannot reach {base}: {type(exc).__name__}"


def _answer(response: requests.Response) -> Any:
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if response.status_code < 400:
        if doc is None:
            raise CommandError(f"HTTP {response.status_code} with no JSON answer")
        return doc
    if isinstance(doc, Mapping):
        code = doc.get("code", "")
        said = doc.get("description") or doc.get("message") or ""
    else:
        code, said = "", " ".join(response.text[:200].split())
    raise CommandError(f"HTTP {response.status_code} {code}: {said}".rstrip(": "))


def note(text: str) -> None:
    """Print ``text`` on stderr at once (progress, and why a retry waits)."""
    print(text, file=sys.stderr, flush=True)


def call(args: argparse.Namespace) -> int:
    """Do one operation; print its JSON answer (stdout); return the exit status.

    - 0: a 2xx answer. For ``run`` and ``resume``, the action is SUCCEEDED,
      or ACTIVE without ``--wait``; ``status``, ``cancel``, ``release``,
      ``log`` and ``enumerate`` answer 0 whatever the action's status.
    - 1 (``EXIT_ERROR``): an error answer (4xx/5xx, printed as
      ``HTTP 404 NotFound: ...`` on stderr), a 2xx that is not JSON, or
      ``run``/``resume`` ended FAILED.
    - 2 (``EXIT_USAGE``): a usage error (argparse's, a URL that is not
      http(s), a bad ``--body``).
    - 3 (:data:`EXIT_INACTIVE`): ``run``/``resume`` ended INACTIVE; the scope
      to consent to and the ``resume`` command are printed on stderr.
    - 4 (:data:`EXIT_TIMEOUT`): ``--timeout`` seconds passed; a ``--wait``
      given up names the action (it goes on), a run not yet answered names
      its ``request_id`` (sent again, it answers the same action).
    - 5 (:data:`EXIT_UNREACHABLE`): nothing answered at the URL (refused,
      unknown name, no answer in :data:`REQUEST_TIMEOUT` seconds). ``run
      --wait``, and any command once it is waiting, keeps trying instead,
      until ``--timeout``.
    """
    client = Client(args.url, args.token, args.timeout)
    operation = args.operation
    if operation == "run":
        document = {
            "request_id": args.request_id or str(uuid.uuid4()),
            "body": read_body(args.body),
        }
        if args.monitor_by:
            document["monitor_by"] = args.monitor_by
        if args.manage_by:
            document["manage_by"] = args.manage_by
        # The same request_id makes a repeat safe: it answers the same action.
        try:
            doc = client.send(*route("run"), json=document, retry=args.wait)
        except CommandError as exc:
            if exc.status != EXIT_TIMEOUT:
                raise
            raise CommandError(
                f"--timeout passed before the run was answered; running again "
                f"with --request-id {document['request_id']} answers the same "
                "action if it was made",
                EXIT_TIMEOUT,
            ) from None
    elif operation == "enumerate":
        params = {"status": args.status, "roles": args.roles}
        doc = client.send(
            *route("enumerate"), params={k: v for k, v in params.items() if v}
        )
    elif operation == "log":
        params = {} if args.limit is None else {"limit": args.limit}
        doc = client.send(*route("log", args.action_id), params=params)
    else:  # status, cancel, release, resume
        doc = client.send(*route(operation, args.action_id))
    if operation in ("run", "resume"):
        return _ended(client, args, doc)
    _print(doc)
    return 0


def route(
    operation: str, action_id: str | None = None, api: str = "1.1"
) -> tuple[str, str]:
    """The method and path of ``operation`` in interface version ``api``
    (1.1 unless told), from the route table; ``action_id`` quoted into it."""
    from aptools.protocol.routes import find

    method = "DELETE" if operation == "release" and api == "1.1" else None
    found = find(operation, api, method)
    path = found.path
    if action_id is not None:
        path = path.replace("{action_id}", quote(action_id, safe=""))
    return found.method, path


def _ended(client: Client, args: argparse.Namespace, doc: Any) -> int:
    """Wait (with ``--wait``) for the action to end; its exit status."""
    waits = pauses(0.5, 10.0, factor=1.5)
    while args.wait and doc.get("status") == ACTIVE:
        shown = doc.get("display_status") or ""
        note(f"  {doc['status']} {shown}".rstrip())
        try:
            client.sleep(next(waits))
            doc = client.send(*route("status", doc["action_id"]), retry=True)
        except CommandError as exc:
            if exc.status != EXIT_TIMEOUT:
                raise
            # The action goes on: say which, so it can be followed or ended.
            action = doc.get("action_id")
            raise CommandError(
                f"--timeout passed; action {action} is still {doc.get('status')}: "
                f"aptools call {args.url} status|cancel|release {action} "
                "--token TOKEN",
                EXIT_TIMEOUT,
            ) from None
    _print(doc)
    status = doc.get("status")
    if status == FAILED:
        note(f"aptools call: action {doc.get('action_id')} FAILED")
        return EXIT_ERROR
    if status == INACTIVE:
        note(_inactive(args, doc))
        return EXIT_INACTIVE
    return 0 if status in (SUCCEEDED, ACTIVE) else EXIT_ERROR


def _inactive(args: argparse.Namespace, doc: Mapping[str, Any]) -> str:
    details = doc.get("details")
    details = details if isinstance(details, Mapping) else {}
    scope = details.get("required_scope")
    if not scope:
        needed = (details.get("authorization_parameters") or {}).get("required_scopes")
        scope = " ".join(needed) if isinstance(needed, list) else None
    action = doc.get("action_id")
    why = f"consent needed for scope: {scope}" if scope else "it waits for resume"
    return (
        f"aptools call: action {action} is INACTIVE; {why}\n"
        f"  then: aptools call {args.url} resume {action} --token NEW_TOKEN --wait"
    )


def _print(doc: Any) -> None:
    print(json.dumps(doc, indent=2))


def read_body(text: str | None) -> Any:
    """``--body``: JSON text, or ``@file`` holding it; ``{}`` when absent.
    Raises :class:`CommandError` with the usage status (2) for an unreadable
    file or text not JSON: a bad ``--body`` is a usage error (docs/reference/cli.md)."""
    if text is None:
        return {}
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise CommandError(
                f"--body {text}: {exc.strerror}", status=EXIT_USAGE
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--body is not JSON: {exc}", status=EXIT_USAGE) from None
