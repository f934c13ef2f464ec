"""longjob: a long-running action done by a background job, step by step.

Each step takes ``step_seconds``; progress, checkpoints and cancellation go
through the store, so any worker process answers status, and a job whose
process was killed goes on from its last step elsewhere.

uvicorn examples.longjob.app:asgi
gunicorn examples.longjob.app:app
aptools worker examples.longjob.app     # jobs in a process of their own

It keeps its callers' refresh tokens, encrypted with the Fernet key in
APTOOLS_ENCRYPTION_KEY (make one with ``Fernet.generate_key()``; several,
comma-separated, newest first, while rotating it). Its ``scope`` input is
the caller's choice, so not declared: it is granted when the job first asks
for it, while the caller's token is valid (a job that knows the scopes it
acts under declares them, ``@provider.job(keep_tokens=True, scopes=[...])``,
and gets them when the run is accepted). With a ``scope`` its caller has
not consented to, the action becomes INACTIVE at the first step (details say
which consent is missing); after the consent, resume goes on from the last
checkpoint.

LONGJOB_MAX_JOBS caps the jobs running at once per process (default 4);
LONGJOB_MAX_JOBS_PER_CALLER caps one caller's jobs running at once across
every process and host (unset: no cap), their further actions waiting their
turn. LONGJOB_MAX_RUNS_PER_CALLER, as RUNS/SECONDS (``30/60``), limits the
rate of one caller's runs (unset: no limit): beyond it, run answers 429 with
Retry-After.
"""

import os

from aptools import (
    Action,
    ActionFailed,
    ActionRequest,
    ActionStatus,
    Caller,
    EnumerateQuery,
    Job,
    Provider,
)


def _rate(text: str) -> tuple[int, float] | None:
    """``RUNS/SECONDS`` (``30/60``) as ``(runs, seconds)``; empty: ``None``."""
    if not text:
        return None
    runs, _, seconds = text.partition("/")
    return int(runs), float(seconds)


provider = Provider(
    title="Long job",
    subtitle="Works in steps, in the background",
    description="Runs the requested number of steps; reports each as it ends.",
    scope=os.environ.get(
        "LONGJOB_SCOPE",
        "https://auth.globus.org/scopes/0c9d7b5e-3a1f-4e62-8f0b-2d6a4c1e9b73/action_all",
    ),
    admin_contact="support@example.org",
    prefix="/longjob",
    synchronous=False,
    visible_to=["public"],
    runnable_by=["all_authenticated_users"],
    input_schema={
        "type": "object",
        "properties": {
            "steps": {
                "type": "integer",
                "minimum": 1,
                "maximum": 3600,
                "description": "How many steps to work.",
            },
            "step_seconds": {
                "type": "number",
                "minimum": 0,
                "maximum": 60,
                "default": 1,
                "description": "Seconds each step takes.",
            },
            "fail_at": {
                "type": "integer",
                "minimum": 1,
                "description": "A step to fail at, to see a FAILED action.",
            },
            "scope": {
                "type": "string",
                "description": "A scope to act under at every step, as the caller.",
            },
        },
        "required": ["steps"],
        "additionalProperties": False,
    },
    max_jobs=int(os.environ.get("LONGJOB_MAX_JOBS", "4")),
    # Unset: no cap on one caller's jobs running at once.
    max_jobs_per_caller=(
        int(os.environ["LONGJOB_MAX_JOBS_PER_CALLER"])
        if os.environ.get("LONGJOB_MAX_JOBS_PER_CALLER")
        else None
    ),
    # Unset: no limit on the rate of one caller's runs.
    max_runs_per_caller=_rate(os.environ.get("LONGJOB_MAX_RUNS_PER_CALLER", "")),
    job_poll_interval=float(os.environ.get("LONGJOB_POLL_INTERVAL", "1.0")),
)


@provider.run
def run(request: ActionRequest, caller: Caller) -> ActionStatus:
    # The first state, answered with the 202; the job starts after.
    return ActionStatus.active({"done": 0, "steps": request.body["steps"]})


# keep_tokens: the caller's dependent refresh tokens are kept (encrypted with
# APTOOLS_ENCRYPTION_KEY), so `caller.authorizer` works for the whole job.
# LONGJOB_LEASE (seconds, 10 by default): how soon another process takes over
# the job of a process that died.
@provider.job(
    resumable=True,
    lease=float(os.environ.get("LONGJOB_LEASE", "10.0")),
    keep_tokens=True,
)
def work(action: Action, caller: Caller, job: Job) -> dict[str, int]:
    steps = int(action.body["steps"])
    pause = float(action.body.get("step_seconds", 1))
    fail_at = action.body.get("fail_at")
    scope = action.body.get("scope")
    done = int(job.checkpoint or 0)
    while done < steps:
        if job.wait(pause):  # canceled, or past the deadline
            job.raise_if_canceled()
        step = done + 1
        if scope is not None:
            # Acting as the caller: a token for the scope, at every step.
            caller.authorizer(scope)
        if step == fail_at:
            raise ActionFailed(
                {"done": done, "steps": steps, "description": f"step {step} failed"},
                display_status=f"Step {step} failed",
            )
        done = step
        job.save_checkpoint(done)
        job.progress(
            {"done": done, "steps": steps},
            display_status=f"{done} of {steps} steps done",
            log={"code": "StepDone", "description": f"step {done} of {steps} done"},
        )
    return {"done": steps, "steps": steps}


@provider.enumerate
def enumerate_actions(query: EnumerateQuery, caller: Caller) -> list[Action]:
    return query.actions


app = provider.wsgi()
asgi = provider.asgi()
