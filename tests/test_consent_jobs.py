"""Consent in background jobs: INACTIVE, handed back with its checkpoint, and
resumed as the resuming caller, in this process or after a take-over. Both
faces, memory and SQLite stores."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from globus_sdk.scopes import TransferScopes

from aptools import (
    Action,
    ActionRequest,
    ActionStatus,
    Caller,
    ConsentRequired,
    Job,
    Provider,
    Store,
    Stored,
)
from aptools.jobs.tokens import seal
from aptools.testing import FakeGlobusAuth, FakeIdentity
from tests.conftest import Client
from tests.test_consent import check_waiting, resume
from tests.test_jobs import (  # noqa: F401 - fixtures
    SCHEMA,
    Build,
    Gate,
    build,
    ended,
    longjob,
    new_store,
    pg_url_fixture,
    schema_fixture,
    status,
    store_kind,
    wait_for,
)

TRANSFER = str(TransferScopes.all)


def waiting(client: Client, who: FakeIdentity, action_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (doc := status(client, who, action_id))["status"] == "INACTIVE" and doc,
        "the action waits for consent",
    )


def test_missing_consent_during_a_job(
    build: Build,  # noqa: F811 - the fixture imported above
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    bob: FakeIdentity,
) -> None:
    seen: list[tuple[Any, str]] = []

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        done = int(job.checkpoint or 0)
        seen.append((job.checkpoint, caller.identity_id))
        if done == 0:
            job.save_checkpoint(1)
            job.progress({"done": 1})
        caller.authorizer(TRANSFER)  # step 2 acts for the caller
        return {"done": 2}

    _, client = build(work, resumable=True)
    auth.withhold_consent(alice, TRANSFER)
    started = client.run(alice, {"n": 1})
    assert started.status_code == 202
    action_id = started.json["action_id"]
    doc = waiting(client, alice, action_id)
    check_waiting(doc, auth.scope, TRANSFER)
    assert resume(client, bob, action_id).status_code == 404
    # still no consent: the job runs again, from its checkpoint, and waits again
    again = resume(client, alice, action_id)
    assert again.status_code == 200 and again.json["status"] == "ACTIVE"
    assert again.json["details"] == {"done": 1}  # as before it waited
    wait_for(lambda: len(seen) == 2, "the job ran again")
    check_waiting(waiting(client, alice, action_id), auth.scope, TRANSFER)
    auth.grant_consent(alice, TRANSFER)
    assert resume(client, alice, action_id).json["status"] == "ACTIVE"
    done = ended(client, alice, action_id)
    assert done["status"] == "SUCCEEDED" and done["details"] == {"done": 2}
    assert seen == [(None, alice.id), (1, alice.id), (1, alice.id)]
    # finished: resume answers it as it is
    assert resume(client, alice, action_id).json == done


def test_missing_consent_in_the_run_handler_of_a_job(
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    flavour: str,
    new_store: Callable[[], Store],  # noqa: F811
) -> None:
    jobs: list[str] = []

    def first(request: ActionRequest, caller: Caller) -> ActionStatus:
        caller.authorizer(TRANSFER)
        return ActionStatus.active({"copied": False})

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        jobs.append(caller.identity_id)
        return {"copied": True}

    provider = Provider(
        title="Jobs",
        scope=auth.scope,
        admin_contact="admin@example.org",
        input_schema=SCHEMA,
        store=new_store(),
        job_poll_interval=0.05,
    )
    provider.run(first)
    provider.job(work)
    app = provider.wsgi() if flavour == "wsgi" else provider.asgi()
    client = Client(app, provider.prefix)
    try:
        auth.withhold_consent(alice, TRANSFER)
        started = client.run(alice, {"n": 1})
        assert started.status_code == 202
        check_waiting(started.json, auth.scope, TRANSFER)
        action_id = started.json["action_id"]
        assert client.run(alice, {"n": 1}).json == started.json  # 200, the same
        auth.grant_consent(alice, TRANSFER)
        resumed = resume(client, alice, action_id)
        assert resumed.json["status"] == "ACTIVE"
        assert resumed.json["details"] == {"copied": False}
        done = ended(client, alice, action_id)
        assert done["details"] == {"copied": True}
        assert jobs == [alice.id]
    finally:
        provider.jobs.shutdown()  # type: ignore[union-attr]


def test_an_outage_in_a_job_fails_it_and_is_not_missing_consent(
    build: Build,  # noqa: F811
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
) -> None:
    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        auth.fail(500)
        try:
            caller.authorizer(TRANSFER)
        finally:
            auth.recover()
        return {}

    _, client = build(work)
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    doc = ended(client, alice, action_id)
    assert doc["status"] == "FAILED"
    assert doc["details"]["code"] == "JobFailed"


def test_missing_consent_after_a_take_over(
    build: Build,  # noqa: F811
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    gate = Gate()
    steps: list[tuple[Any, int]] = []
    lock = threading.Lock()
    kept = threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        with lock:
            steps.append((job.checkpoint, job.attempt))
        if job.checkpoint is None:
            caller.authorizer(auth.scope)  # step 1: a refresh token is kept
            job.save_checkpoint(1)
            kept.set()
            if not gate.step(job):  # the process "dies" here
                return {}
        # step 2 needs a scope no kept token covers
        return {"token": caller.authorizer(TRANSFER).access_token[:5]}

    first, client = build(work, keep_tokens=True, resumable=True, lease=3600.0)
    caller_token = auth.token(alice)
    action_id = client.run(caller_token, {"n": 1}).json["action_id"]
    # Step 1 done: its token and checkpoint are kept before the hand-back.
    wait_for(kept.is_set, "step 1 ran")
    first.jobs.shutdown()  # type: ignore[union-attr]  # handed back
    auth.revoke(caller_token)  # gone before the job first asks for TRANSFER
    second, other = build(work, keep_tokens=True, resumable=True, lease=3600.0)
    second.jobs.runner()  # type: ignore[union-attr]  # takes the job over
    # an undeclared scope, the caller's token refused (invalid_grant): the
    # caller must act again - consent, then resume - never FAILED
    doc = waiting(other, alice, action_id)
    check_waiting(doc, auth.scope, TRANSFER)
    assert steps[1][0] == 1  # from its checkpoint
    # resumed through one process; this one or another takes it up (the
    # resuming caller's token goes with the job, encrypted: see below)
    third, last = build(work, keep_tokens=True, resumable=True, lease=3600.0)
    third.jobs.runner()  # type: ignore[union-attr]
    resumed = resume(other, alice, action_id)
    assert resumed.json["status"] == "ACTIVE"
    done = ended(last, alice, action_id)
    assert done["status"] == "SUCCEEDED", done
    assert done["details"]["token"].startswith("fake-")
    assert [checkpoint for checkpoint, _ in steps] == [None, 1, 1]


def test_the_longjob_example_waits_for_consent(
    auth: FakeGlobusAuth,
    flavour: str,
    alice: FakeIdentity,
) -> None:
    provider, client = longjob(auth, flavour)
    try:
        auth.withhold_consent(alice, TRANSFER)
        body = {"steps": 2, "step_seconds": 0, "scope": TRANSFER}
        started = client.run(alice, body)
        assert started.status_code == 202
        assert started.json["details"] == {"done": 0, "steps": 2}
        action_id = started.json["action_id"]
        check_waiting(waiting(client, alice, action_id), auth.scope, TRANSFER)
        auth.grant_consent(alice, TRANSFER)
        resumed = resume(client, alice, action_id)
        assert resumed.json["status"] == "ACTIVE"
        assert resumed.json["details"] == {"done": 0, "steps": 2}
        done = ended(client, alice, action_id)
        assert done["status"] == "SUCCEEDED"
        assert done["details"] == {"done": 2, "steps": 2}
        log = client.call("GET", f"/{action_id}/log", alice).json
        assert [e["code"] for e in log["entries"]] == ["StepDone"] * 2
    finally:
        provider.jobs.shutdown()  # type: ignore[union-attr]


def test_a_resumed_job_acts_as_the_resuming_caller_in_any_process(
    build: Build,  # noqa: F811
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv("APTOOLS_ENCRYPTION_KEY", key.decode())

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        return {}

    provider, _ = build(work, keep_tokens=True)
    engine = provider.jobs
    assert engine is not None
    saved: list[bytes] = []
    sealed = seal(Fernet(key), {}, alice.token)
    assert alice.token.encode() not in sealed
    record = {"identity_id": alice.id, "identities": [f"urn:x:{alice.id}"]}
    # another process: no live caller, only the row's record and tokens
    caller = engine.caller_for("elsewhere", record, sealed, saved.append)
    auth.withhold_consent(alice, TRANSFER)
    with pytest.raises(ConsentRequired):
        caller.authorizer(TRANSFER)
    auth.grant_consent(alice, TRANSFER)
    assert caller.authorizer(TRANSFER).access_token.startswith("fake-")
    # the refresh token now kept goes with the resuming caller's token
    assert saved and alice.token.encode() not in saved[-1]
    again = engine.caller_for("elsewhere", record, saved[-1], saved.append)
    assert again.authorizer(TRANSFER).access_token.startswith("fake-")
    # with nothing kept, the caller must act again: consent, then resume
    bare = engine.caller_for("elsewhere", record, None, saved.append)
    with pytest.raises(ConsentRequired) as needed:
        bare.authorizer(TRANSFER)
    assert needed.value.required_scopes == [TRANSFER]


def test_a_job_taken_over_without_kept_tokens_waits_for_its_caller(
    build: Build,  # noqa: F811
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
) -> None:
    gate = Gate()
    runs: list[Any] = []
    saved = threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        runs.append(job.checkpoint)
        if job.checkpoint is None:
            job.save_checkpoint(1)
            saved.set()
            if not gate.step(job):  # the process "dies" here
                return {}
        return {"token": caller.authorizer(TRANSFER).access_token[:5]}

    first, client = build(work, resumable=True, lease=3600.0)
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    wait_for(saved.is_set, "the job saved its checkpoint")
    first.jobs.shutdown()  # type: ignore[union-attr]
    second, other = build(work, resumable=True, lease=3600.0)
    second.jobs.runner()  # type: ignore[union-attr]
    # taken over, no token of the caller's at all: waiting, not FAILED
    check_waiting(waiting(other, alice, action_id), auth.scope, TRANSFER)
    # resumed here: this process's runner goes on as the resuming caller
    assert resume(other, alice, action_id).json["status"] == "ACTIVE"
    done = ended(other, alice, action_id)
    assert done["status"] == "SUCCEEDED", done
    assert runs == [None, 1, 1]


def test_a_resume_answered_while_the_job_parks_its_action_runs_it_again(
    build: Build,  # noqa: F811 - the fixture imported above
    new_store: Callable[[], Store],  # noqa: F811
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
) -> None:
    """The resume comes right after the job parked its action INACTIVE (its
    outcome and the row's hand-back are one fenced write), before the job's
    thread has finished: the resumed job is claimed again, acts with the
    resuming caller's token, once, and the action ends."""
    runs: list[Any] = []
    parked, resumed = threading.Event(), threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        runs.append(job.checkpoint)
        if job.checkpoint is None:
            job.save_checkpoint(1)
        caller.authorizer(TRANSFER)
        return {"done": 2}

    def written(stored: Stored) -> None:
        # In the job's thread, the INACTIVE state just stored with the row
        # handed back: the thread goes on only once the test has resumed.
        if stored.action().status == "INACTIVE" and not parked.is_set():
            parked.set()
            resumed.wait(30)

    _, client = build(work, resumable=True, store=Hooked.around(new_store(), written))
    auth.withhold_consent(alice, TRANSFER)
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    assert parked.wait(30)
    auth.grant_consent(alice, TRANSFER)
    try:
        again = resume(client, alice, action_id)
    finally:
        resumed.set()
    assert again.status_code == 200 and again.json["status"] == "ACTIVE"
    done = ended(client, alice, action_id)
    assert done["status"] == "SUCCEEDED", done
    assert done["details"] == {"done": 2}
    assert runs == [None, 1]


class Hooked:
    """Wraps the ``conclude`` and ``conclude_and_claim`` of a store's job
    queue (its views' too) so that a test sees each outcome a job stored,
    once it is stored."""

    @staticmethod
    def around(store: Store, seen: Callable[[Stored], None]) -> Store:
        base = type(store)

        def hooked_queue(queue: Any) -> Any:
            queue_base = type(queue)

            def conclude(
                self: Any, fence: Any, stored: Stored, expires_at: Any, keep: bool
            ) -> None:
                queue_base.conclude(self, fence, stored, expires_at, keep)
                seen(stored)

            def conclude_and_claim(
                self: Any,
                fence: Any,
                stored: Stored,
                expires_at: Any,
                keep: bool,
                *claim: Any,
            ) -> Any:
                got = queue_base.conclude_and_claim(
                    self, fence, stored, expires_at, keep, *claim
                )
                seen(stored)
                return got

            queue.__class__ = type(
                f"Hooked{queue_base.__name__}",
                (queue_base,),
                {"conclude": conclude, "conclude_and_claim": conclude_and_claim},
            )
            return queue

        def jobs(self: Store) -> Any:
            queue = base.jobs(self)
            return None if queue is None else hooked_queue(queue)

        def for_provider(self: Store, namespace: str) -> Store:
            view = base.for_provider(self, namespace)
            view.__class__ = hooked
            return view

        hooked = type(
            f"Hooked{base.__name__}",
            (base,),
            {"jobs": jobs, "for_provider": for_provider},
        )
        store.__class__ = hooked
        return store
