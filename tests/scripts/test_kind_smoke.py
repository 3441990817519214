"""scripts/kind_smoke.py against a real Airflow 3.3.2 API server (FAB auth manager, like the chart).

No scheduler runs here, so a triggered run stays queued: the test proves the login, unpause, trigger and
poll requests are the ones Airflow accepts, and that an unfinished run fails the smoke check with exit 1.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SMOKE = REPO_ROOT / "scripts" / "kind_smoke.py"
DAG_ID = "containerised_partition_report"

# One interpreter for the three setup commands (each CLI start costs ~10 s of provider loading).
_SETUP = textwrap.dedent(
    """
    import sys
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()
    for argv in (
        ["fab-db", "migrate"],
        ["users", "create", "--role", "Admin", "--username", sys.argv[1], "--email", "smoke@airbricks.local",
         "--firstname", "Smoke", "--lastname", "Test", "--password", sys.argv[2]],
        ["dags", "reserialize"],
    ):
        args = parser.parse_args(argv)
        args.func(args)
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def api_server(
    airflow_db: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    password = os.urandom(12).hex()
    env = {
        **os.environ,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(24).hex(),
        "AIRFLOW__API__SECRET_KEY": os.urandom(24).hex(),
    }
    setup = subprocess.run(
        [sys.executable, "-c", _SETUP, "smoke", password],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert setup.returncode == 0, setup.stderr[-3000:]
    port = _free_port()
    log = tmp_path_factory.mktemp("api") / "api-server.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"api-server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(1)
        yield {"url": url, "username": "smoke", "password": password, **env}
    finally:
        process.terminate()
        process.wait(timeout=30)


def _smoke(api: dict[str, str], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "AIRBRICKS_UI_USERNAME": api["username"],
        "AIRBRICKS_UI_PASSWORD": api["password"],
        **env,
    }
    return subprocess.run(
        [sys.executable, str(SMOKE), "--url", api["url"], *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.integration
@pytest.mark.slow
def test_smoke_triggers_through_the_real_api_and_fails_an_unfinished_run(api_server: dict[str, str]) -> None:
    result = _smoke(api_server, "--dags", DAG_ID, "--timeout", "6", "--poll", "1")
    assert result.returncode == 1, result.stderr
    assert f"triggered {DAG_ID}: manual__" in result.stdout
    assert f"{DAG_ID}: queued" in result.stdout
    assert "not successful" in result.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_smoke_rejects_a_wrong_password(api_server: dict[str, str]) -> None:
    result = _smoke(api_server, "--dags", DAG_ID, "--timeout", "6", AIRBRICKS_UI_PASSWORD="wrong-password")
    assert result.returncode == 2
    assert "/auth/token: HTTP 401" in result.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_smoke_reports_an_unknown_dag(api_server: dict[str, str]) -> None:
    result = _smoke(api_server, "--dags", "no_such_dag", "--timeout", "6")
    assert result.returncode == 2
    assert "HTTP 404" in result.stderr


def test_smoke_needs_the_login() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRBRICKS_UI_")}
    result = subprocess.run(
        [sys.executable, str(SMOKE), "--url", "http://127.0.0.1:9", "--dags", DAG_ID],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "AIRBRICKS_UI_USERNAME and AIRBRICKS_UI_PASSWORD must be set" in result.stderr


def test_smoke_refuses_a_non_http_url() -> None:
    result = subprocess.run(
        [sys.executable, str(SMOKE), "--url", "file:///etc/passwd", "--dags", DAG_ID],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--url must be http(s)" in result.stderr
