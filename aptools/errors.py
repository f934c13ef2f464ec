"""The errors a provider answers with, and the outcome ``ActionFailed``.

Every error is a :class:`falcon.HTTPError` carrying its HTTP status and its
``code`` as class attributes; one serializer renders them all as
``{"code": ..., "description": ...}`` on both WSGI and ASGI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import falcon

__all__ = [
    "ActionFailed",
    "ActionProviderError",
    "AuthServiceError",
    "AuthServiceUnavailable",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "InternalError",
    "NotFound",
    "PayloadTooLarge",
    "RequestValidationError",
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
    """Globus Auth or Groups could not be reached in time; retry later."""

    status_code = 503
    error_code = "AuthServiceUnavailable"
    default_description = (
        "Globus Auth could not be reached to check your credentials; retry later."
    )


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
