"""Pytest fixtures for the local S3 server and the API replay server.

Both are real HTTP servers on ``127.0.0.1`` (free ports) running in background threads of the pytest
process; code under test (boto3, ``S3Hook``, the ingestion HTTP client, Airflow tasks run by
``dag.test()``) talks to them over the wire.

- ``s3_server`` (session): :class:`airbricks.local.s3.S3Server` — ``.endpoint_url``, ``.client()``,
  ``.create_bucket(name)``, ``.reset()``, ``.list_keys(bucket, prefix)``.
- ``replay_server`` (function): :class:`airbricks.local.replay.ReplayServer` with the bundled
  ``hackernews`` and ``github`` fixtures — ``.url``, ``.requests``, ``.inject(...)``, ``.add_route(...)``,
  ``.add_synthetic(...)``, ``.load_fixtures(dir)``, ``.set_token(source, token)``. One server per session,
  reset before every test, so each test starts with no faults, no recorded requests, no extra routes.
- :func:`airflow_conn_env` builds the ``AIRFLOW_CONN_*`` variables for both (use with
  ``monkeypatch.setenv``); the ``local_airflow_conns`` fixture does exactly that.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airbricks.local.connections import airflow_conn_env
from airbricks.local.replay import ReplayServer
from airbricks.local.s3 import S3Server

__all__ = ["airflow_conn_env", "local_airflow_conns", "replay_server", "s3_server"]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server for the whole session; call ``.reset()`` in a test that needs it empty."""
    with S3Server() as server:
        yield server


@pytest.fixture(scope="session")
def _replay_server_session() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def replay_server(_replay_server_session: ReplayServer) -> Iterator[ReplayServer]:
    """The API replay server, freshly reset for this test (and reset again afterwards)."""
    _replay_server_session.reset()
    yield _replay_server_session
    _replay_server_session.reset()


@pytest.fixture
def local_airflow_conns(
    s3_server: S3Server, replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Sets ``AIRFLOW_CONN_AWS_DEFAULT`` and ``AIRFLOW_CONN_HTTP_<SOURCE>`` for this test; returns them.

    Tokens required by the replay server (``replay_server.set_token``) must be set before this fixture
    runs to land in the connections; otherwise call :func:`airflow_conn_env` again after setting them.
    """
    env = airflow_conn_env(s3_server, replay_server)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
