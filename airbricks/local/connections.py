"""Airflow connections (as ``AIRFLOW_CONN_*`` environment variables) pointing at the local stand-ins.

Airflow reads a connection ``<id>`` from the variable ``AIRFLOW_CONN_<ID>`` (JSON format), before the
metadata database, so the same DAGs run against the stand-ins or the real services depending only on
the environment. ``make demo`` and the tests both use :func:`airflow_conn_env`.
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import urlsplit


class _HasEndpoint(Protocol):
    endpoint_url: str

    def airflow_connection(self) -> dict[str, Any]: ...


class _HasReplay(Protocol):
    url: str
    port: int

    @property
    def sources(self) -> dict[str, dict[str, Any]]: ...

    def token_for(self, source: str) -> str | None: ...


def http_connection(host: str, port: int, *, password: str | None = None) -> dict[str, Any]:
    """An ``http`` connection in Airflow's JSON format, plain HTTP on ``host:port``."""
    conn: dict[str, Any] = {"conn_type": "http", "host": host, "port": port, "schema": "http"}
    if password:
        conn["password"] = password
    return conn


def airflow_conn_env(s3_server: _HasEndpoint | None, replay_server: _HasReplay | None) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables for ``aws_default`` and one ``http_<source>`` per replayed source.

    A source for which the replay server requires a token gets it as the connection password (the
    ingestion code sends it as ``Authorization: Bearer <token>``).

    :param s3_server: the local S3 server (``airbricks.local.s3.S3Server``), or None to leave S3 alone.
    :param replay_server: the API replay server (``airbricks.local.replay.ReplayServer``), or None.
    """
    env: dict[str, str] = {}
    if s3_server is not None:
        env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(s3_server.airflow_connection())
    if replay_server is not None:
        host = urlsplit(replay_server.url).hostname or "127.0.0.1"
        for source in sorted(replay_server.sources):
            conn = http_connection(host, replay_server.port, password=replay_server.token_for(source))
            env[f"AIRFLOW_CONN_HTTP_{source.upper()}"] = json.dumps(conn)
    return env
