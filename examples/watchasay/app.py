"""watchasay: the echo provider of the original toolkit's documentation.

gunicorn examples.watchasay.app:app        # WSGI
uvicorn examples.watchasay.app:asgi        # ASGI
aptools dev examples.watchasay.app         # local, with a fake Globus Auth
"""

import os

from aptools import ActionRequest, Caller, Provider

provider = Provider(
    title="What Did You Say?",
    subtitle="Echoes the string it is given",
    description="A synchronous provider that answers with its input.",
    keywords=["echo", "example"],
    scope=os.environ.get(
        "WATCHASAY_SCOPE",
        "https://auth.globus.org/scopes/d3a66776-759f-4316-ba55-21725fe37323/action_all",
    ),
    admin_contact="support@example.org",
    prefix="/skeleton",
    synchronous=True,
    visible_to=["public"],
    runnable_by=["all_authenticated_users"],
    input_schema={
        "type": "object",
        "properties": {"input_string": {"type": "string"}},
        "required": ["input_string"],
        "additionalProperties": False,
    },
)


@provider.run
def run(request: ActionRequest, caller: Caller) -> dict[str, str]:
    return {"you_said": request.body["input_string"]}


app = provider.wsgi()
asgi = provider.asgi()
