"""aptools serving the echo provider; the store comes from APTOOLS_STORE."""

from __future__ import annotations

import gc
import os
from typing import Any

from aptools import ActionRequest, Caller, Provider

from .common import INPUT_SCHEMA, PREFIX, SCOPE, TITLE

NAME = "aptools"


def build(store: str) -> Provider:
    """The echo provider on ``store`` (a store URL)."""
    made = Provider(
        title=TITLE,
        scope=SCOPE,
        admin_contact="bench@example.org",
        input_schema=INPUT_SCHEMA,
        prefix=PREFIX,
        synchronous=True,
        store=store,
        # Raised by in-process harnesses run under valgrind (default 2 s).
        auth_timeout=float(os.environ.get("BENCH_AUTH_TIMEOUT", "2")),
    )

    @made.run
    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        return {"you_said": request.body["input_string"]}

    return made


provider = build(os.environ.get("APTOOLS_STORE") or "memory:")
app = provider.wsgi()
asgi = provider.asgi()
# As `aptools serve` does after loading: nothing made so far needs collecting.
gc.freeze()
