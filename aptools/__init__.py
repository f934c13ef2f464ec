"""aptools: build Globus Action Providers from plain functions.

Everything a provider author needs is importable from here::

    from aptools import Provider, ActionStatus, ActionFailed
"""

from aptools.auth import Caller, SharedIntrospections
from aptools.errors import (
    ActionFailed,
    ActionProviderError,
    AuthServiceError,
    AuthServiceUnavailable,
    BadRequest,
    Conflict,
    ConsentRequired,
    Forbidden,
    InternalError,
    NotFound,
    PayloadTooLarge,
    ProviderMisconfigured,
    RequestValidationError,
    StoreUnavailable,
    TooManyRequests,
    Unauthorized,
    UnprocessableEntity,
)
from aptools.faces.observe import RequestInfo
from aptools.jobs import Job, JobCanceled, JobLost
from aptools.models import (
    ACTIVE,
    FAILED,
    INACTIVE,
    SUCCEEDED,
    Action,
    ActionRequest,
    ActionStatus,
    EnumerateQuery,
    LogEntry,
    LogPage,
    LogQuery,
    StatusName,
    parse_duration,
)
from aptools.provider import Provider, ProviderConfigError
from aptools.schemacheck import SchemaKeywordWarning
from aptools.store import (
    MemoryStore,
    RequestKey,
    Reservation,
    SQLiteStore,
    Store,
    Stored,
    open_store,
)

__version__ = "0.1.0"

__all__ = [
    "ACTIVE",
    "FAILED",
    "INACTIVE",
    "SUCCEEDED",
    "Action",
    "ActionFailed",
    "ActionProviderError",
    "ActionRequest",
    "ActionStatus",
    "AuthServiceError",
    "AuthServiceUnavailable",
    "BadRequest",
    "Caller",
    "Conflict",
    "ConsentRequired",
    "EnumerateQuery",
    "Forbidden",
    "InternalError",
    "Job",
    "JobCanceled",
    "JobLost",
    "LogEntry",
    "LogPage",
    "LogQuery",
    "MemoryStore",
    "NotFound",
    "PayloadTooLarge",
    "Provider",
    "ProviderConfigError",
    "ProviderMisconfigured",
    "RequestInfo",
    "RequestKey",
    "RequestValidationError",
    "Reservation",
    "SQLiteStore",
    "SchemaKeywordWarning",
    "SharedIntrospections",
    "StatusName",
    "Store",
    "StoreUnavailable",
    "Stored",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableEntity",
    "open_store",
    "parse_duration",
]
