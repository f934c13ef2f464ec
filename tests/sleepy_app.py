"""A provider whose ``def`` run handler blocks for ``body.seconds`` (served by
tests/test_handoff_e2e.py under a real server)."""

import os
import time
from typing import Any

from aptools import ActionRequest, Caller, Provider

provider = Provider(
    title="Sleepy",
    scope=os.environ["WATCHASAY_SCOPE"],
    admin_contact="support@example.org",
    prefix="/sleepy",
    synchronous=True,
    input_schema={
        "type": "object",
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 5}},
        "required": ["seconds"],
    },
)


@provider.run
def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
    time.sleep(request.body["seconds"])  # blocks its thread, as real work would
    return {"slept": request.body["seconds"]}


app = provider.wsgi()
asgi = provider.asgi()
