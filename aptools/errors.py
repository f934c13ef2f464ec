"""The errors a provider answers with, and the outcome ``ActionFailed``.

Every error is a :class:`falcon.HTTPError` carrying its HTTP status and its
``code`` as class attributes; one serializer renders them all as
``{"code": ..., "description": ...}`` on both WSGI and ASGI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final

import falcon

__all__ = [
    "ActionFailed",
    "ActionProviderError",
    "AuthServiceError",
    "AuthServiceUnavailable",
    "BadRequest",
    "Conflict",
    "ConsentRequired",
    "Forbidden",
    "InternalError",
    "JobCanceled",
    "JobLost",
    "NotFound",
    "PayloadTooLarge",
    "ProviderMisconfigured",
    "RequestValidationError",
    "StoreUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableEntity",
]


class ActionProviderError(falcon.HTTPError):
    """Base of every error aptools answers with.

    Raise a subclass from a handler to answer with it, for example::

        raise Conflict("the job is still staging")
    """

    status_code: ClassVar[int] = 500
    error_code: ClassVar[str] = "ActionProviderError"
    default_description: ClassVar[str] = "The request failed."

    def __init__(
        self,
        description: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            self.status_code,
            title=self.error_code,
            description=description or self.default_description,
            headers=dict(headers) if headers else None,
        )


class BadRequest(ActionProviderError):
    """The request could not be read: not JSON, not an object, bad parameters."""

    status_code = 400
    error_code = "BadRequest"
    default_description = "The request could not be understood."


class RequestValidationError(BadRequest):
    """The request document or its body breaks a rule of its schema."""

    error_code = "RequestValidationError"
    default_description = "The request document is not valid."


class UnprocessableEntity(ActionProviderError):
    """The request is well formed but cannot be carried out as asked."""

    status_code = 422
    error_code = "UnprocessableEntity"
    default_description = "The request cannot be carried out as asked."


class Unauthorized(ActionProviderError):
    """No usable bearer token: missing, malformed, inactive or wrong scope."""

    status_code = 401
    error_code = "AuthenticationFailed"
    default_description = "A valid Globus Auth bearer token is required."

    def __init__(
        self,
        description: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            description, headers={"WWW-Authenticate": "Bearer", **(headers or {})}
        )


class Forbidden(ActionProviderError):
    """The caller is authenticated but may not do this."""

    status_code = 403
    error_code = "Forbidden"
    default_description = "You are not allowed to do this."


class NotFound(ActionProviderError):
    """No such action, or one the caller may not see (answered the same way)."""

    status_code = 404
    error_code = "NotFound"
    default_description = "No such action."


class Conflict(ActionProviderError):
    """The request conflicts with the action's state or an earlier request."""

    status_code = 409
    error_code = "Conflict"
    default_description = "The request conflicts with the current state."


class PayloadTooLarge(ActionProviderError):
    """The request body is larger than the provider accepts."""

    status_code = 413
    error_code = "PayloadTooLarge"
    default_description = "The request body is too large."


class TooManyRequests(ActionProviderError):
    """More runs from this caller than the provider takes; retry later.

    Answered to a run beyond the provider's ``max_runs_per_caller`` (429,
    RFC 6585 §4), with ``Retry-After`` (whole seconds, RFC 9110 §10.2.3):
    ``retry_after``, at least 1, when the caller's next run is taken.
    Nothing of the refused request is kept: its ``request_id`` may be sent
    again.
    """

    status_code = 429
    error_code = "TooManyRequests"
    default_description = "Too many runs from this caller; retry later."

    def __init__(
        self,
        description: str | None = None,
        *,
        retry_after: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(
            description,
            headers={"Retry-After": str(self.retry_after), **(headers or {})},
        )


class InternalError(ActionProviderError):
    """A bug in the provider; details go to the server log only."""

    status_code = 500
    error_code = "InternalError"
    default_description = "The provider failed to handle this request."


class AuthServiceError(ActionProviderError):
    """Globus Auth or Groups answered with an error the caller cannot fix."""

    status_code = 502
    error_code = "AuthServiceError"
    default_description = (
        "Globus Auth answered with an error while checking your credentials."
    )


class AuthServiceUnavailable(AuthServiceError):
    """Globus Auth or Groups could not be reached in time; retry later.

    The answer carries ``Retry-After`` (seconds, RFC 9110 §10.2.3):
    ``retry_after``, by default :data:`RETRY_AFTER`; when Globus Auth itself
    answered 429 or 503 with a ``Retry-After``, its value is passed on.
    """

    status_code = 503
    error_code = "AuthServiceUnavailable"
    default_description = (
        "Globus Auth could not be reached to check your credentials; retry later."
    )

    def __init__(
        self,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.retry_after = max(1, RETRY_AFTER if retry_after is None else retry_after)
        super().__init__(
            description,
            headers={"Retry-After": str(self.retry_after), **(headers or {})},
        )


#: Seconds a client is asked to wait after a 503 (``Retry-After``).
RETRY_AFTER: Final = 5


class ConsentRequired(ActionProviderError):
    """The caller has not consented to a scope the provider acts in for them.

    Raised by :meth:`Caller.dependent_token` and :meth:`Caller.authorizer`
    when Globus Auth grants no token for a scope because the caller has not
    consented to it, and raisable by provider code, for example when another
    Globus service answers ``ConsentRequired``::

        raise ConsentRequired(required_scopes=[TransferScopes.all])

    ``required_scopes`` are the missing scopes (scope strings).
    :meth:`details` gives the action details the Action Provider Interface
    asks for (``code``, ``description``, ``required_scope``) together with a
    Globus Auth Requirements Error's ``authorization_parameters``. Answered
    as HTTP 403 with code ``ConsentRequired`` where no action takes it.
    """

    status_code = 403
    error_code = "ConsentRequired"
    default_description = (
        "Your consent is needed for the provider to act for you at another service."
    )

    def __init__(
        self,
        description: str | None = None,
        *,
        required_scopes: Iterable[str],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        scopes = [str(scope) for scope in required_scopes]
        if not scopes or not all(scope.strip() for scope in scopes):
            raise ValueError("ConsentRequired needs at least one required scope")
        self.required_scopes: list[str] = list(dict.fromkeys(scopes))
        super().__init__(description, headers=headers)

    def required_scope(self, provider_scope: str) -> str:
        """``provider_scope`` with every missing scope as its dependent, in
        Globus scope-string syntax (``"ap_scope[transfer_scope]"``)."""
        from globus_sdk.scopes import Scope

        needed = [Scope.parse(scope) for scope in self.required_scopes]
        return str(Scope.parse(provider_scope).with_dependencies(needed))

    def details(self, provider_scope: str) -> dict[str, Any]:
        """The action details for this missing consent (a JSON object).

        Shape: ``{"code": "ConsentRequired", "description": str,
        "required_scope": str, "authorization_parameters": {"required_scopes":
        [str], "session_message": str}}`` — the interface's consent form
        (``required_scope``) and a Globus Auth Requirements Error, so that
        ``globus_sdk.gare.to_gare(details)`` reads the same requirement.
        """
        from globus_sdk.gare import GARE, GlobusAuthorizationParameters

        required = self.required_scope(provider_scope)
        gare = GARE(
            code=self.error_code,
            authorization_parameters=GlobusAuthorizationParameters(
                required_scopes=[required],
                session_message=self.description,
            ),
        )
        details = {"code": gare.code, "description": self.description}
        details["required_scope"] = required
        details.update(gare.to_dict())
        return details


class StoreUnavailable(ActionProviderError):
    """The action store could not be reached or answered too late; retry later.

    Raised by network stores (PostgreSQL) on a lost connection, a full pool
    or a statement timeout. Answered as 503 with ``Retry-After`` (seconds,
    RFC 9110 section 10.2.3).
    """

    status_code = 503
    error_code = "StoreUnavailable"
    default_description = "The action store could not be reached in time; retry later."

    def __init__(
        self,
        description: str | None = None,
        *,
        retry_after: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            description, headers={"Retry-After": str(retry_after), **(headers or {})}
        )


class ProviderMisconfigured(ActionProviderError):
    """The provider's configuration lacks a setting this request needs (such
    as the encryption key of the tokens its jobs keep); its operator must set
    it.

    Answered as 503 with ``Retry-After`` (60 s): the fault is the host's, not
    the caller's, and another host, or this one once set, can answer. The
    readiness route answers 503 meanwhile, naming the setting, so that a
    load balancer takes the host out of rotation.
    """

    status_code = 503
    error_code = "ProviderMisconfigured"
    default_description = (
        "This provider is not configured to do this yet; its operator has been "
        "told. Retry later."
    )

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description, headers={"Retry-After": "60"})


class ActionFailed(Exception):
    """Raise from a handler to end the action as FAILED with these details.

    Example::

        @provider.run
        def run(request, caller):
            if not request.body["path"].startswith("/"):
                raise ActionFailed({"error": "path must be absolute"})
            if disk_is_full():
                raise ActionFailed("disk full")  # details {"message": "disk full"}
            ...

    ``details`` is a dict or a message string (answered as
    ``{"message": text}``).
    """

    def __init__(
        self,
        details: Mapping[str, Any] | str | None = None,
        *,
        display_status: str | None = None,
    ) -> None:
        from aptools.models import details_of

        self.details: dict[str, Any] = details_of(details)
        self.display_status = display_status
        super().__init__(details if isinstance(details, str) else "action failed")


class JobCanceled(Exception):
    """Raised by :meth:`aptools.Job.raise_if_canceled`: the job must stop.

    Let it propagate; the action already holds its final state (FAILED,
    canceled or past its deadline) and what the job returns is discarded.
    """


class JobLost(JobCanceled):
    """Raised by a job's write (:meth:`aptools.Job.progress`,
    :meth:`~aptools.Job.save_checkpoint`) once this process no longer holds
    the job: its lease ran out and another process took it over (this one
    was frozen, paused or cut off from the store for longer than the lease),
    or the job was handed back.

    The write was refused by the store, as every later one will be (each
    carries the claim's fencing token); :attr:`aptools.Job.lost` is True.
    Let it propagate: the process holding the job now goes on from the last
    checkpoint, and what this one returns is discarded. A subclass of
    :class:`JobCanceled`, so code that lets that one through lets this one
    through too.
    """


#: What Falcon's own routing errors say (no route at a path, a method a route
#: does not take); they are rendered like every other error.
ROUTING_DESCRIPTIONS: Final[Mapping[int, str]] = {
    404: "Nothing is served at this path.",
    405: "This path does not take this method; see the Allow header.",
}


def status_meanings() -> dict[int, str]:
    """What each HTTP status aptools answers with means: the ``code`` and the
    first docstring line of every error class answering it (and of Falcon's
    routing errors), for documents such as the OpenAPI one."""
    found: dict[int, list[str]] = {}
    todo: list[type[ActionProviderError]] = [ActionProviderError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls is ActionProviderError:
            continue
        summary = (cls.__doc__ or "").strip().splitlines()[0].rstrip(".")
        found.setdefault(cls.status_code, []).append(f"{cls.error_code}: {summary}")
    for status, text in ROUTING_DESCRIPTIONS.items():
        found.setdefault(status, []).append(text.rstrip("."))
    return {status: "; ".join(sorted(texts)) + "." for status, texts in found.items()}
