"""The Flask toolkit (globus-action-provider-tools 0.21.0) serving the echo
provider, with hand-written deduplication by caller and request_id, as its
authors have to write it. Runs in its own virtualenv (pydantic 1, globus-sdk 3).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from flask import Flask
from globus_action_provider_tools import (
    ActionProviderDescription,
    ActionRequest,
    ActionStatus,
    ActionStatusValue,
    AuthState,
)
from globus_action_provider_tools.flask import ActionProviderBlueprint
from globus_action_provider_tools.flask.helpers import assign_json_provider
from globus_action_provider_tools.storage import AbstractActionRepository

from .common import INPUT_SCHEMA, PREFIX, SCOPE, TITLE

NAME = "flask-toolkit"


class _Repository(AbstractActionRepository):
    def __init__(self) -> None:
        self.actions: dict[str, ActionStatus] = {}

    def get(self, action_id: str) -> ActionStatus | None:
        return self.actions.get(action_id)

    def store(self, action: ActionStatus) -> None:
        self.actions[action.action_id] = action

    def remove(self, action: ActionStatus) -> None:
        self.actions.pop(action.action_id, None)


_requests: dict[tuple[str, str], str] = {}
repository = _Repository()

blueprint = ActionProviderBlueprint(
    name="skeleton",
    import_name=__name__,
    url_prefix=PREFIX,
    provider_description=ActionProviderDescription(
        globus_auth_scope=SCOPE,
        title=TITLE,
        admin_contact="bench@example.org",
        synchronous=True,
        input_schema=INPUT_SCHEMA,
    ),
    action_repository=repository,
)


@blueprint.action_run
def run(request: ActionRequest, auth: AuthState) -> Any:
    key = (auth.effective_identity, request.request_id)
    known = _requests.get(key)
    if known is not None and known in repository.actions:
        return repository.actions[known]
    status = ActionStatus(
        status=ActionStatusValue.SUCCEEDED,
        creator_id=auth.effective_identity,
        action_id=str(uuid.uuid4()),
        details={"you_said": request.body["input_string"]},
    )
    _requests[key] = status.action_id
    return status


@blueprint.action_status
def status(action: ActionStatus, auth: AuthState) -> ActionStatus:
    return action


@blueprint.action_cancel
def cancel(action: ActionStatus, auth: AuthState) -> ActionStatus:
    return action


@blueprint.action_release
def release(action: ActionStatus, auth: AuthState) -> ActionStatus:
    repository.remove(action)
    return action


app = Flask(__name__)
assign_json_provider(app)
app.config["CLIENT_ID"] = os.environ["APTOOLS_CLIENT_ID"]
app.config["CLIENT_SECRET"] = os.environ["APTOOLS_CLIENT_SECRET"]
app.register_blueprint(blueprint)
