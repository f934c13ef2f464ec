"""How Globus Flows calls a provider: the ``Action`` state of a flow.

A flow calls an Action Provider from an ``Action`` state: its ``ActionUrl``
is the provider's URL (``{public_url}{prefix}``) and its ``Parameters`` the
run request's ``body``. The shape is Globus Flows' own (its "Action" state
type); the provider page (:mod:`aptools.page`) shows one ready to paste.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["action_state", "one_state_flow", "state_name"]


def state_name(title: str) -> str:
    """A flow state's name from a provider's title: its words joined in
    CamelCase, ASCII letters and digits only (``"Long job"`` → ``"LongJob"``);
    ``"RunAction"`` when nothing is left, or when it would start with a digit."""
    words = re.findall(r"[A-Za-z0-9]+", title)
    name = "".join(w[:1].upper() + w[1:] for w in words)
    return name if name and not name[0].isdigit() else "RunAction"


def action_state(action_url: str, body: Any, *, result_path: str) -> dict[str, Any]:
    """An ``Action`` state calling the provider at ``action_url`` with ``body``
    (the run request's body, as ``Parameters``); the action's final status
    document is put at ``result_path`` of the flow's state (``"$.Result"``).
    The state ends the flow (``"End": true``)."""
    return {
        "Type": "Action",
        "ActionUrl": action_url,
        "Parameters": body,
        "ResultPath": result_path,
        "End": True,
    }


def one_state_flow(title: str, action_url: str, body: Any) -> dict[str, Any]:
    """A flow definition of one ``Action`` state calling the provider, named
    after ``title`` by :func:`state_name`: ``{"StartAt": name, "States":
    {name: state}}``. Paste the state into a flow's ``States``, or register
    the whole as a flow to try the provider."""
    name = state_name(title)
    state = action_state(action_url, body, result_path=f"$.{name}Result")
    return {"StartAt": name, "States": {name: state}}
