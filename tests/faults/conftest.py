"""Fixtures of the fault-injection suite: the outcome recorder, the secret watch, records accounting.

Every fault test injects a fault into a real local server (API replay server, moto S3 behind a TCP fault
proxy, Databricks emulator), runs real Airflow task execution, then records one
:class:`~airbricks.reliability.report.FaultOutcome` per fault *before* asserting it, so that
``make reliability`` prints the figures even when a fault is not handled.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from faults_proxy import FaultProxy
from faults_support import BUCKET, FAST_OVERRIDES, MAX_WAIT_SECONDS

from airbricks.reliability import report

_SESSION_REPORT = pathlib.Path(tempfile.mkdtemp(prefix="airbricks-reliability-")) / "faults.jsonl"


def _report_path() -> pathlib.Path:
    return pathlib.Path(os.environ.get(report.REPORT_ENV) or _SESSION_REPORT)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures after any session that ran fault tests (``make test`` included)."""
    outcomes = report.load(_report_path()) if _report_path() == _SESSION_REPORT else []
    if outcomes:
        terminalreporter.section("reliability (tests/faults)")
        for line in report.render(outcomes):
            terminalreporter.write_line(line)


@pytest.fixture
def record_fault(request: pytest.FixtureRequest) -> Callable[..., report.FaultOutcome]:
    """``record_fault(fault, expected, observed, handled, records_lost=0, ...)`` appends to the report."""

    def record(fault: str, expected: str, observed: str, handled: bool, **counts: int) -> report.FaultOutcome:
        outcome = report.FaultOutcome(
            fault=fault,
            expected=expected,
            observed=observed,
            handled=bool(handled),
            test=request.node.nodeid,
            **counts,
        )
        report.append(_report_path(), outcome)
        return outcome

    return record


class SecretWatch:
    """Generates the test's secrets and finds them in every log line the test produced.

    Sources searched: everything written to fd 1/2 (``capfd``: Airflow's task logs of ``dag.test()`` go to
    stdout), every log record (``caplog``), and every file under ``$AIRFLOW_HOME/logs`` written since the
    test started.
    """

    def __init__(self, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
        self._capfd = capfd
        self._caplog = caplog
        self._secrets: dict[str, str] = {}
        self._captured: list[str] = []
        self._started = time.time()

    def new(self, name: str, nbytes: int = 24) -> str:
        """A fresh random secret (never a literal), remembered under ``name``."""
        value = secrets.token_urlsafe(nbytes)
        self._secrets[name] = value
        return value

    def add(self, name: str, value: str) -> None:
        self._secrets[name] = value

    def text(self) -> str:
        out, err = self._capfd.readouterr()
        self._captured += [out, err]
        logs_dir = pathlib.Path(os.environ["AIRFLOW_HOME"]) / "logs"
        files = []
        if logs_dir.is_dir():
            files = [
                p.read_text(errors="replace")
                for p in logs_dir.rglob("*")
                if p.is_file() and p.stat().st_mtime >= self._started - 1
            ]
        records = [f"{r.getMessage()} {r.exc_text or ''}" for r in self._caplog.records]
        return "\n".join([*self._captured, *records, *files])

    def leaks(self) -> list[str]:
        """Names of the secrets that appear in any captured line."""
        text = self.text()
        return sorted(name for name, value in self._secrets.items() if value in text)

    def echo(self) -> None:
        """Put the captured output back on the terminal (for -s / failure reports)."""
        print("".join(self._captured))


@pytest.fixture
def secret_watch(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> SecretWatch:
    caplog.set_level(logging.INFO)
    return SecretWatch(capfd, caplog)


# ---- ingestion environment ------------------------------------------------------------------------
@pytest.fixture
def s3_proxy(s3_server: Any) -> Iterator[FaultProxy]:
    """A TCP fault proxy in front of the session's moto S3 server."""
    with FaultProxy("127.0.0.1", s3_server.port) as proxy:
        yield proxy


@pytest.fixture
def ingest_env(
    airflow_db: Any,
    s3_server: Any,
    s3_proxy: FaultProxy,
    replay_server: Any,
    secret_watch: SecretWatch,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
) -> dict[str, Any]:
    """Connections for the ingestion DAGs: S3 through the fault proxy with a generated secret key, GitHub
    with a generated bearer token (the replay server enforces it), fast retries; an empty raw bucket."""
    from airbricks.local.connections import airflow_conn_env

    replay_server.set_token("github", secret_watch.new("github token"))
    aws_secret = secret_watch.new("aws secret key", 30)
    for name, value in airflow_conn_env(None, replay_server).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "faultsuite",
                "password": aws_secret,  # moto accepts any key; this one must never show up in a log
                "extra": {
                    "endpoint_url": s3_proxy.endpoint_url,
                    "region_name": "us-east-1",
                    "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 3}},
                },
            }
        ),
    )
    monkeypatch.setenv("AIRBRICKS_INGEST_OVERRIDES", json.dumps(FAST_OVERRIDES))
    monkeypatch.setenv("AIRBRICKS_INGEST_MAX_WAIT_SECONDS", MAX_WAIT_SECONDS)
    monkeypatch.delenv("AIRBRICKS_RAW_BUCKET", raising=False)
    # Failure notifications keep their rate-limit state locally (their default is the real raw bucket).
    monkeypatch.setenv("AIRBRICKS_NOTIFY_STATE_URL", (tmp_path / "notify-state").as_uri())
    s3_server.reset()
    s3_server.create_bucket(BUCKET)
    return {"s3": s3_server, "proxy": s3_proxy, "replay": replay_server, "secrets": secret_watch}


# ---- the real Airflow deployment of the process-level faults --------------------------------------------
@pytest.fixture(scope="session")
def airflow_stack(
    databricks_emulator_server: Any, s3_server: Any, _replay_server_session: Any
) -> Iterator[Any]:
    """Two schedulers, a triggerer, a DAG processor and two API servers on a PostgreSQL server of their own,
    shared by every process-level fault test (starting one costs about a minute). Its DAGs: the probe DAGs
    of ``stack_dags/`` and the real ``ingest_hackernews`` with ``sources.yaml``; its connections: the
    session's Databricks emulator, S3 server and API replay server. Ingestion runs are bounded to the first
    half of 2026: the scheduler makes one run for the last interval (no catchup), the tests trigger theirs
    with explicit logical dates inside that window (outside it, a run gets no task instances)."""
    from airflow_stack import STACK_DAGS, AirflowStack
    from faults_support import DAGS_DIR

    from airbricks.local.connections import airflow_conn_env
    from airbricks.local.postgres import PostgresUnavailable
    from airbricks.testing.databricks import DatabricksEmulator

    base = pathlib.Path(tempfile.mkdtemp(prefix="airbricks-stack-"))
    overrides = {
        **FAST_OVERRIDES,
        "start_date": "2026-01-01",
        "end_date": "2026-06-30",  # tasks exist only for logical dates in [start_date, end_date]
        "max_active_runs": 64,
    }
    env = {
        **DatabricksEmulator(databricks_emulator_server).airflow_conn_env(),
        **airflow_conn_env(s3_server, _replay_server_session),
        "AIRBRICKS_INGEST_OVERRIDES": json.dumps(overrides),
        "AIRBRICKS_INGEST_MAX_WAIT_SECONDS": MAX_WAIT_SECONDS,
        "AIRBRICKS_NOTIFY_STATE_URL": (base / "notify-state").as_uri(),
    }
    dag_files = [
        *sorted(STACK_DAGS.glob("*.py")),
        DAGS_DIR / "ingest_hackernews.py",
        DAGS_DIR / "sources.yaml",
    ]
    try:
        stack = AirflowStack(base, dag_files, env=env)
    except PostgresUnavailable as exc:
        pytest.skip(f"the Airflow stack needs PostgreSQL: {exc}")
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)
