"""Client-controlled text made safe for a log line.

Anything a client sends (a path, an action id, a method) goes through
:func:`quoted` before it reaches a log record's message, so that a line feed
cannot start a forged line and an escape character cannot drive a terminal.
"""

from __future__ import annotations

import json

__all__ = ["quoted"]


def quoted(value: object) -> str:
    """``value`` as one unambiguous log field.

    Plain text (printable ASCII without spaces, quotes or backslashes) is
    returned unchanged; anything else is a JSON string literal, ASCII only,
    so control characters, line and paragraph separators and non-ASCII
    letters appear as ``\\n``, ``\\u001b``, ``\\u2028`` and the like.

    >>> quoted("/test/actions/abc")
    '/test/actions/abc'
    >>> quoted("x\\nFORGED")
    '"x\\\\nFORGED"'
    """
    text = value if isinstance(value, str) else str(value)
    # Printable ASCII other than space, '"' and '\\' cannot end a line, split
    # a field or pass for an escaped value. PERF: str methods, not a regex
    # fullmatch: about 190 ns against 360 ns for a 52-character path.
    if (
        text.isascii()
        and text.isprintable()
        and " " not in text
        and '"' not in text
        and "\\" not in text
    ):
        return text
    return json.dumps(text)
