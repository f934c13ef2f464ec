"""What every contender serves: the echo provider of the toolkit's docs.

Importable from any virtualenv (no aptools, no Flask here).
"""

from __future__ import annotations

import os

PREFIX = "/skeleton"
SCOPE = os.environ.get(
    "BENCH_SCOPE", "https://auth.globus.org/scopes/aptools-bench/action_all"
)
INPUT_SCHEMA = {
    "type": "object",
    "properties": {"input_string": {"type": "string"}},
    "required": ["input_string"],
    "additionalProperties": False,
}
TITLE = "What Did You Say?"
