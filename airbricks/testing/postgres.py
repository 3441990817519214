"""Pytest fixtures for a real PostgreSQL metadata DB, one server per test session.

- ``postgres_server`` (session): the session's :class:`airbricks.local.postgres.PostgresServer`
  (``initdb`` + ``pg_ctl`` in a temporary directory, free port), stopped at the end of the session. Tests that
  restart or kill the server use this one; with ``$AIRBRICKS_POSTGRES_URL`` set they skip, naming it.
- ``postgres_url`` (function): a fresh, empty database for this test, as a SQLAlchemy URL string: on the
  session's server, or on the existing server of ``$AIRBRICKS_POSTGRES_URL`` when that is set.

``make reliability`` (and ``AIRBRICKS_TEST_DB=postgres`` for any session) also puts the session's in-process
Airflow on PostgreSQL: the root conftest calls :func:`airbricks.local.postgres.session_database_url` before
Airflow is imported.

Without the PostgreSQL binaries the fixtures skip with the reason and the command that installs them.
"""

from __future__ import annotations

import os

import pytest

from airbricks.local.postgres import (
    EXISTING_SERVER_ENV,
    PostgresServer,
    PostgresUnavailable,
    session_database_url,
    session_server,
    unique_database_name,
)

__all__ = ["postgres_server", "postgres_url"]


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """The session's own PostgreSQL server (restartable; not available with an existing server)."""
    if os.environ.get(EXISTING_SERVER_ENV):
        pytest.skip(
            f"needs a PostgreSQL server this session owns (restarts it); {EXISTING_SERVER_ENV} is set"
        )
    try:
        return session_server()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL is not available: {exc}")


@pytest.fixture
def postgres_url() -> str:
    """A fresh, empty database for this test (SQLAlchemy URL, password included)."""
    try:
        return session_database_url(unique_database_name())
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL is not available: {exc}")
