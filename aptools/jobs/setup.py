"""How a :class:`~aptools.Provider` declares its background job and builds
the :class:`~aptools.jobs.engine.JobEngine` that runs it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from aptools.jobs.engine import JobEngine
from aptools.jobs.keys import KEY_VARIABLE
from aptools.jobs.settings import JobSettings
from aptools.settings import ProviderConfigError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

    from aptools.auth import Authenticator
    from aptools.store import Store

__all__ = ["JobDeclaration", "checked_scopes"]


def checked_scopes(scopes: Iterable[str], what: str) -> tuple[str, ...]:
    """``scopes`` as a tuple of scope strings, each once, each checked with
    Globus's scope parser (:mod:`globus_sdk.scopes`); a single string, an
    empty or malformed scope is a :class:`ProviderConfigError`."""
    from globus_sdk.scopes import ScopeParseError, ScopeParser

    if isinstance(scopes, str):
        raise ProviderConfigError(
            f"{what} must be a list of scope strings, not a string"
        )
    found: list[str] = []
    for scope in scopes:
        text = str(scope).strip()
        try:
            parsed = ScopeParser.parse(text)
        except ScopeParseError:
            parsed = []
        if len(parsed) != 1:
            raise ProviderConfigError(f"{what}: {text!r} is not one scope string")
        found.append(text)
    return tuple(dict.fromkeys(found))


class JobDeclaration:
    """A provider's job settings, and its job once declared.

    ``max_jobs`` (jobs running at once per process, a positive whole number)
    and ``poll_interval`` (seconds, positive) are the provider's settings;
    ``encryption_key`` the Fernet key for kept tokens (else
    ``APTOOLS_ENCRYPTION_KEY``). Raises :class:`ProviderConfigError` for a
    setting out of bounds.
    """

    def __init__(
        self,
        max_jobs: int,
        poll_interval: float,
        encryption_key: str | None,
        dependent_scopes: Iterable[str] = (),
    ) -> None:
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
            raise ProviderConfigError(
                f"max_jobs must be a positive whole number: {max_jobs!r}"
            )
        if not poll_interval > 0:
            raise ProviderConfigError(
                "job_poll_interval must be a positive number of seconds"
            )
        self.max_jobs = max_jobs
        self.poll_interval = poll_interval
        self.encryption_key = encryption_key
        self.dependent_scopes = checked_scopes(dependent_scopes, "dependent_scopes")
        self.declared: tuple[Callable[..., Any], JobSettings] | None = None

    def settings(
        self,
        resumable: bool,
        lease: float,
        keep_tokens: bool,
        scopes: Iterable[str] = (),
        max_attempts: int = 10,
        stop_timeout: float = 25.0,
    ) -> JobSettings:
        """The settings of a job declared with these options (``lease`` and
        ``stop_timeout`` in seconds, positive and not negative; ``scopes``
        scope strings, only with ``keep_tokens``; ``max_attempts`` a positive
        whole number), else :class:`ProviderConfigError`."""
        if not lease > 0:
            raise ProviderConfigError(
                "a job's lease must be a positive number of seconds"
            )
        if (
            isinstance(max_attempts, bool)
            or not isinstance(max_attempts, int)
            or max_attempts < 1
        ):
            raise ProviderConfigError(
                f"max_attempts must be a positive whole number: {max_attempts!r}"
            )
        if not stop_timeout >= 0:
            raise ProviderConfigError(
                "a job's stop_timeout must be a number of seconds, 0 or more"
            )
        declared = checked_scopes(scopes, "a job's scopes")
        if declared and not keep_tokens:
            raise ProviderConfigError(
                "a job's scopes are granted for keeping: declare them with "
                "keep_tokens=True"
            )
        return JobSettings(
            resumable,
            float(lease),
            self.max_jobs,
            self.poll_interval,
            keep_tokens,
            declared,
            max_attempts,
            float(stop_timeout),
        )

    def scopes(self) -> tuple[str, ...]:
        """Every scope the provider acts under for its callers: the
        provider's ``dependent_scopes``, then its job's, each once."""
        job = () if self.declared is None else self.declared[1].scopes
        return tuple(dict.fromkeys((*self.dependent_scopes, *job)))

    def declare(self, fn: Callable[..., Any], settings: JobSettings) -> None:
        self.declared = (fn, settings)

    def engine(
        self, store: Store, auth: Authenticator, max_deadline: float
    ) -> JobEngine | None:
        """The engine of the declared job on ``store`` (``None`` without a
        job). Raises :class:`ProviderConfigError` when the store cannot hold
        jobs, or kept tokens need a key that is missing or malformed."""
        if self.declared is None:
            return None
        from aptools.typing import is_async

        fn, settings = self.declared
        granting = self.scopes() if settings.keep_tokens else ()
        queue = store.jobs()
        if queue is None:
            raise ProviderConfigError(
                f"the store {type(store).__name__} cannot hold background jobs"
            )
        keys = None
        if settings.keep_tokens:
            # Read as the app is built; checked when first needed.
            setting = self.encryption_key or os.environ.get(KEY_VARIABLE)

            def keys() -> MultiFernet:
                from aptools.jobs.keys import load_key

                try:
                    return load_key(setting)
                except ValueError as exc:
                    raise ProviderConfigError(str(exc)) from None

        return JobEngine(
            fn,
            settings,
            store=store,
            queue=queue,
            auth=auth,
            max_deadline=max_deadline,
            is_async=is_async(fn),
            keys=keys,
            scopes=granting,
        )
