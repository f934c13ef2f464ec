"""countdown: an asynchronous provider, ACTIVE for the number of seconds asked.

uvicorn examples.countdown.app:asgi
gunicorn examples.countdown.app:app
"""

import os
import time
from datetime import UTC, datetime

from aptools import (
    Action,
    ActionRequest,
    ActionStatus,
    Caller,
    EnumerateQuery,
    LogEntry,
    LogPage,
    LogQuery,
    Provider,
)

provider = Provider(
    title="Countdown",
    subtitle="Waits, then succeeds",
    description="ACTIVE for the requested number of seconds, then SUCCEEDED.",
    scope=os.environ.get(
        "COUNTDOWN_SCOPE",
        "https://auth.globus.org/scopes/5b4f1c1e-4c3a-4f7a-9d55-0c4a3e8b6d21/action_all",
    ),
    admin_contact="support@example.org",
    prefix="/countdown",
    synchronous=False,
    input_schema={
        "type": "object",
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 60}},
        "required": ["seconds"],
        "additionalProperties": False,
    },
)


def _progress(ends_at: float) -> ActionStatus:
    left = ends_at - time.time()
    if left <= 0:
        return ActionStatus.succeeded({"message": "Countdown finished"})
    return ActionStatus.active(
        {"seconds_left": round(left, 3)}, display_status="Counting down"
    )


@provider.run
async def run(request: ActionRequest, caller: Caller) -> ActionStatus:
    ends_at = time.time() + float(request.body["seconds"])
    status = _progress(ends_at)
    status.state = {"ends_at": ends_at}
    return status


@provider.status
def status(action: Action, caller: Caller) -> ActionStatus:
    return _progress(action.state["ends_at"])


@provider.cancel
def cancel(action: Action, caller: Caller) -> ActionStatus:
    return ActionStatus.failed(
        {"message": "Countdown canceled before it finished"},
        display_status="Canceled",
    )


@provider.log
def log(action: Action, caller: Caller, query: LogQuery) -> LogPage:
    ends_at = action.state["ends_at"]
    entries = [
        LogEntry(
            time=action.start_time, code="STARTED", description="Countdown started"
        )
    ]
    if action.completion_time is not None or ends_at <= time.time():
        entries.append(
            LogEntry(
                time=action.completion_time
                or datetime.fromtimestamp(ends_at, UTC).isoformat(),
                code="FINISHED" if action.status != "FAILED" else "CANCELED",
                description="Countdown ended",
            )
        )
    if query.reverse_order:
        entries.reverse()
    return LogPage(entries=entries[: query.limit])


@provider.enumerate
def enumerate_actions(query: EnumerateQuery, caller: Caller) -> list[Action]:
    for action in query.actions:
        if not action.is_terminal:
            fresh = _progress(action.state["ends_at"])
            action.status, action.details = fresh.status, fresh.details
            action.display_status = fresh.display_status
    return query.actions


app = provider.wsgi()
asgi = provider.asgi()
