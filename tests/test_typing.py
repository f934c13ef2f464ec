"""Handler signatures: checked at registration, and by mypy through aptools.typing."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path
from typing import Any

import pytest

from aptools import Provider, ProviderConfigError


def _provider() -> Provider:
    return Provider(
        title="Signatures",
        scope="https://auth.globus.org/scopes/x/action_all",
        admin_contact="admin@example.org",
        input_schema={"type": "object"},
    )


def _run_one(request: Any) -> Any:
    return {}


def _run_keywords(*, request: Any, caller: Any) -> Any:
    return {}


def _two(a: Any, b: Any) -> Any:
    return None


def _three(a: Any, b: Any, c: Any) -> Any:
    return []


async def _async_two(a: Any, b: Any) -> Any:
    return None


def _any(*args: Any) -> Any:
    return None


def _defaults(a: Any, b: Any, c: Any = None, *, d: Any = 1) -> Any:
    return None


class _Callable:
    def __call__(self, a: Any, b: Any) -> Any:
        return None


@pytest.mark.parametrize(
    ("name", "fn", "expected"),
    [
        ("run", _run_one, "run(request, caller)"),
        ("run", _run_keywords, "run(request, caller)"),
        ("run", _three, "run(request, caller)"),
        ("log", _two, "log(action, caller, query)"),
        ("status", _three, "status(action, caller)"),
        ("enumerate", _run_one, "enumerate(query, caller)"),
        ("release", lambda: None, "release(action, caller)"),
    ],
)
def test_a_handler_that_cannot_be_called_is_refused_at_registration(
    name: str, fn: Any, expected: str
) -> None:
    provider = _provider()
    with pytest.raises(ProviderConfigError) as raised:
        getattr(provider, name)(fn)
    message = str(raised.value)
    assert f"the {name} handler" in message
    assert expected in message
    assert name not in provider.handlers


@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("run", _two),
        ("run", _async_two),
        ("run", _any),
        ("run", _defaults),
        ("run", _Callable()),
        ("run", functools.partial(_three, None)),
        ("log", _three),
        ("status", lambda action, caller: None),
        ("enumerate", _async_two),
    ],
)
def test_handlers_that_can_be_called_are_taken(name: str, fn: Any) -> None:
    provider = _provider()
    assert getattr(provider, name)(fn) is fn  # returned unchanged


_CHECKED = """\
from typing import Any
from aptools import Action, ActionRequest, Caller, LogEntry, LogQuery, Provider

provider = Provider(title="t", scope="s", admin_contact="a", input_schema={})

@provider.run
async def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
    return {}

@provider.log
def log(action: Action, caller: Caller, query: LogQuery) -> list[LogEntry]:
    return []

@provider.status
def status(action: Action, caller: Caller) -> None:
    return None

reveal_type(run)

@provider.cancel
def cancel(action: Action) -> None:  # wrong: (action, caller)
    return None

@provider.resume
def resume(action: Action, caller: Caller) -> int:  # wrong: the result
    return 1
"""


def test_mypy_checks_a_decorated_handler(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    module = tmp_path / "provider_module.py"
    module.write_text(textwrap.dedent(_CHECKED))
    out, _, status = api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(module),
        ]
    )
    assert status == 1, out
    lines = out.splitlines()
    # The decorator returns the function as written.
    assert any("def (request: aptools.models.ActionRequest" in ln for ln in lines)
    wrong = [ln for ln in lines if ": error:" in ln]
    assert len(wrong) == 2, out
    assert '"cancel" of "Provider"' in wrong[0]
    assert '"resume" of "Provider"' in wrong[1]
