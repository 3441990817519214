"""The release's smoke check (.github/scripts/airflow_smoke.py) against a real Airflow 3.3.2 API server.

The server is Airflow's own FastAPI app (``create_app``) served by uvicorn on a free loopback port, backed by
this session's migrated SQLite metadata DB. Component health in Airflow is a heartbeat row in the ``job``
table, so the tests write those rows the way a scheduler, triggerer and DAG processor do, and check the smoke
script goes red while one is missing or stale and green once all beat.
"""

from __future__ import annotations

import datetime
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_SCRIPT = REPO_ROOT / ".github" / "scripts" / "airflow_smoke.py"
Beat = Callable[..., None]
COMPONENT_JOB_TYPES = {
    "scheduler": "SchedulerJob",
    "triggerer": "TriggererJob",
    "dag_processor": "DagProcessorJob",
}


@pytest.fixture(scope="module")
def api_server(airflow_db: Path) -> Iterator[str]:
    """Base URL of a real Airflow REST API (core app) on 127.0.0.1."""
    import uvicorn
    from airflow.api_fastapi.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app("core"), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the Airflow API server thread died while starting"
        assert time.monotonic() < deadline, "the Airflow API server did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def heartbeats(airflow_db: Path) -> Iterator[Beat]:
    """``beat(component, age_seconds=0)`` writes a running job row whose last heartbeat is that old."""
    from airflow.jobs.job import Job, JobState
    from airflow.utils.session import create_session

    created: list[int] = []

    def beat(component: str, age_seconds: float = 0.0) -> None:
        now = datetime.datetime.now(datetime.UTC)
        with create_session() as session:
            job = Job(job_type=COMPONENT_JOB_TYPES[component])
            job.state = JobState.RUNNING
            job.latest_heartbeat = now - datetime.timedelta(seconds=age_seconds)
            session.add(job)
            session.flush()
            created.append(job.id)

    yield beat
    with create_session() as session:
        session.query(Job).filter(Job.id.in_(created)).delete(synchronize_session=False)


def smoke(base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    # The release runs the script with the runner's bare python3; it must need nothing but the stdlib.
    return subprocess.run(
        [sys.executable, "-I", str(SMOKE_SCRIPT), "--base-url", base_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_passes_when_every_component_beats_and_the_version_matches(api_server: str, heartbeats: Beat) -> None:
    import airflow

    for component in COMPONENT_JOB_TYPES:
        heartbeats(component)
    result = smoke(
        api_server, "--expect-version", airflow.__version__, "--timeout", "30", "--interval", "0.5"
    )
    assert result.returncode == 0, result.stderr
    assert f"Airflow {airflow.__version__}" in result.stdout
    assert "scheduler=healthy" in result.stdout


def test_fails_naming_the_component_that_does_not_beat(api_server: str, heartbeats: Beat) -> None:
    heartbeats("scheduler")
    heartbeats("dag_processor")
    heartbeats("triggerer", age_seconds=3600)  # a triggerer that died an hour ago
    result = smoke(api_server, "--timeout", "1", "--interval", "0.2")
    assert result.returncode == 1
    assert "FAILED" in result.stderr
    assert "triggerer=unhealthy" in result.stderr
    assert "scheduler=" not in result.stderr.splitlines()[-1]


def test_fails_when_the_wrong_airflow_version_answers(api_server: str, heartbeats: Beat) -> None:
    for component in COMPONENT_JOB_TYPES:
        heartbeats(component)
    result = smoke(api_server, "--expect-version", "2.99.0", "--timeout", "1", "--interval", "0.2")
    assert result.returncode == 1
    assert "expected '2.99.0'" in result.stderr


def test_keeps_retrying_until_the_component_comes_up(api_server: str, heartbeats: Beat) -> None:
    heartbeats("scheduler")
    heartbeats("triggerer")
    process = subprocess.Popen(
        [
            sys.executable,
            "-I",
            str(SMOKE_SCRIPT),
            "--base-url",
            api_server,
            "--timeout",
            "60",
            "--interval",
            "0.3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # let it fail at least once on the missing DAG processor
        assert process.poll() is None, "the smoke check gave up instead of retrying"
        heartbeats("dag_processor")
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "waiting (unhealthy components: dag_processor=" in stderr


def test_fails_clearly_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    result = smoke(f"http://127.0.0.1:{closed_port}", "--timeout", "0.5", "--interval", "0.2")
    assert result.returncode == 1
    assert f"GET http://127.0.0.1:{closed_port}/api/v2/version" in result.stderr


def test_rejects_a_base_url_that_is_not_http() -> None:
    result = smoke("file:///etc/passwd")
    assert result.returncode == 2
    assert "--base-url must be an http(s) URL" in result.stderr
