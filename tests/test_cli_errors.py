"""Every command reports a configuration or input error as one line on stderr
and exit status 1, never a traceback (docs/reference/cli.md)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from .cli_support import cli_env
from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    execute,
    pg_url_fixture,
    schema_fixture,
)
from .servers import aptools_cli

#: Every command that loads a provider named MODULE[:ATTR].
LOADING = ("serve", "check", "dev", "openapi", "worker", "rekey", "jobs", "fakeauth")


def _one_line(
    done: subprocess.CompletedProcess[str], command: str, status: int = 1
) -> str:
    assert done.returncode == status, (done.stdout, done.stderr)
    said = done.stderr
    assert "Traceback" not in said, said
    assert said.count("\n") == 1, said
    assert said.startswith(f"aptools {command}: "), said
    return said


def _module(tmp_path: Path) -> Path:
    """A directory holding echo.py, a provider module, and a sibling one."""
    here = tmp_path / "here"
    here.mkdir()
    (here / "echo.py").write_text("raise SystemExit('imported')\n")
    return here


@pytest.mark.parametrize("command", LOADING)
def test_a_module_given_as_a_file_path_is_one_line(
    tmp_path: Path, command: str
) -> None:
    done = aptools_cli(command, "./echo.py", cwd=_module(tmp_path), env=cli_env())
    said = _one_line(done, command)
    assert "'./echo.py' is not a module name" in said
    assert "name it echo" in said


@pytest.mark.parametrize(
    ("target", "hint"),
    [
        (".echo", "relative name"),
        ("../here/echo", "name it echo"),
        ("..", "not a module name"),
        ("../", "not a module name"),
        ("here/echo.py", "name it echo"),
        ("echo.py", "name it echo"),
        ("", "MODULE is empty"),
        (":", "MODULE is empty"),
        (":provider", "MODULE is empty"),
        (".echo:provider", "relative name"),
    ],
)
def test_relative_and_empty_module_names_are_one_line(
    tmp_path: Path, target: str, hint: str
) -> None:
    here = _module(tmp_path)
    done = aptools_cli("check", target, cwd=here, env=cli_env())
    said = _one_line(done, "check")
    assert hint in said
    assert "(store" not in said  # nothing to do with the store


def test_a_dotted_name_is_still_imported(tmp_path: Path) -> None:
    done = aptools_cli("check", "echo", cwd=_module(tmp_path), env=cli_env())
    assert "imported" in done.stderr  # the module ran: its name was taken


@pytest.mark.parametrize(
    "command", ["check", "jobs", "worker", "rekey", "serve", "dev"]
)
def test_a_postgresql_schema_of_a_newer_aptools_is_one_line(
    tmp_path: Path, pg_url: str, schema: str, command: str
) -> None:
    env = cli_env(
        APTOOLS_CLIENT_ID="c",
        APTOOLS_CLIENT_SECRET="s",
        APTOOLS_STORE=pg_url,
        APTOOLS_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    )
    made = aptools_cli("rekey", "examples.longjob.app", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr  # the schema exists, current
    execute(f'INSERT INTO "{schema}".aptools_schema (version) VALUES (99)')
    extra = ["--no-auth-check", "--port", "1"] if command == "serve" else []
    done = aptools_cli(command, "examples.longjob.app", *extra, cwd=tmp_path, env=env)
    said = _one_line(done, command)
    assert f"schema '{schema}' is at version 99" in said
    assert "upgrade aptools" in said
    assert "PostgreSQL store postgresql://" in said


@pytest.mark.parametrize("command", ["worker", "jobs", "rekey"])
def test_a_store_no_other_process_can_read_is_refused(
    tmp_path: Path, command: str
) -> None:
    # A worker on memory: would idle forever: no job queued elsewhere reaches it.
    env = cli_env(
        APTOOLS_CLIENT_ID="c",
        APTOOLS_CLIENT_SECRET="s",
        APTOOLS_STORE="memory:",
        APTOOLS_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    )
    done = aptools_cli(command, "examples.longjob.app", cwd=tmp_path, env=env)
    said = _one_line(done, command)
    assert "memory: store" in said


def _schemas(name: str) -> int:
    found = execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", name)
    return int(found[0][0])


def test_check_creates_and_migrates_nothing_on_postgresql(
    tmp_path: Path, pg_url: str, schema: str
) -> None:
    from aptools.store.postgresql import VERSION

    env = cli_env(APTOOLS_STORE=pg_url)
    first = aptools_cli(
        "check", "examples.longjob.app", "--offline", cwd=tmp_path, env=env
    )
    assert first.returncode == 0, first.stderr
    assert "no aptools tables in its schema yet" in first.stdout
    assert _schemas(schema) == 0  # a mistyped schema name writes nothing
    # Made by a serving process, then left one version behind.
    env["APTOOLS_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    env.update(APTOOLS_CLIENT_ID="c", APTOOLS_CLIENT_SECRET="s")
    made = aptools_cli("rekey", "examples.longjob.app", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    current = aptools_cli(
        "check", "examples.longjob.app", "--offline", cwd=tmp_path, env=env
    )
    assert current.returncode == 0, current.stderr
    assert "first serve" not in current.stdout
    execute(f'DELETE FROM "{schema}".aptools_schema WHERE version = {VERSION}')
    older = aptools_cli(
        "check", "examples.longjob.app", "--offline", cwd=tmp_path, env=env
    )
    assert older.returncode == 0, older.stderr
    assert f"tables at version {VERSION - 1}; the first serve migrates" in older.stdout
    kept = execute(f'SELECT max(version) FROM "{schema}".aptools_schema')
    assert kept == [(VERSION - 1,)]


@pytest.mark.parametrize(
    "name", ["pg_catalog", "information_schema", "pg_toast", "pg_mine", ""]
)
def test_postgresqls_own_schemas_are_a_bad_store_url(tmp_path: Path, name: str) -> None:
    from aptools.store.postgresql import PostgreSQLStore

    url = f"postgresql://app:s3cret@127.0.0.1:1/db?schema={name}"
    with pytest.raises(ValueError, match="bad PostgreSQL store URL"):
        PostgreSQLStore(url)
    done = aptools_cli(
        "check", "examples.longjob.app", cwd=tmp_path, env=cli_env(APTOOLS_STORE=url)
    )
    said = _one_line(done, "check")
    assert "bad PostgreSQL store URL" in said and "s3cret" not in said
