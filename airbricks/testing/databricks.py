"""Pytest fixtures for the local Databricks workspace emulator.

``databricks_emulator`` (function scope) hands a test a clean workspace on one emulator server that lives for
the whole session: before each test the workspace is reset (faults cleared, runs cancelled and forgotten,
clusters removed, storage mapping off) and the bundle named by the ``databricks_bundle_dir`` fixture is
loaded, so its jobs exist by name. Override ``databricks_bundle_dir`` in a test module or conftest to use
another bundle (the default is the repo's ``databricks/`` bundle, or none while it does not exist yet)::

    @pytest.fixture
    def databricks_bundle_dir():
        return REPO_ROOT / "tests/emulator/bundle"

    def test_x(databricks_emulator, monkeypatch):
        monkeypatch.setenv(*databricks_emulator.airflow_conn_env().popitem())
        ...

The token is generated per session and never written anywhere but this process's memory.
"""

from __future__ import annotations

import json
import pathlib
import secrets
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airbricks.emulator.faults import Faults
    from airbricks.emulator.server import EmulatorServer

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE = REPO_ROOT / "databricks"


class DatabricksEmulator:
    """What a test gets: address, token, faults, state, and helpers for clients.

    :param server: the running :class:`~airbricks.emulator.server.EmulatorServer`.
    """

    def __init__(self, server: EmulatorServer):
        self._server = server
        self.workspace = server.workspace

    host = property(lambda self: self._server.host)
    port = property(lambda self: self._server.port)
    url = property(lambda self: self._server.url)
    token = property(lambda self: self._server.token)

    @property
    def faults(self) -> Faults:
        """Fault injection: ``http_error``, ``slow_cluster_start``, ``fail_cluster_start``, ``lose_cluster``,
        ``fail_runs``, ``clear`` (see :class:`airbricks.emulator.faults.Faults`)."""
        return self.workspace.faults

    def state(self) -> dict[str, Any]:
        """Clusters, active clusters, jobs, runs (with task pids) and armed faults."""
        return self.workspace.state()

    def connection_dict(self) -> dict[str, Any]:
        """The Airflow ``databricks`` connection reaching this emulator (token in ``password``)."""
        return {
            "conn_type": "databricks",
            "host": self.host,
            "schema": "http",
            "port": self.port,
            "password": self.token,
        }

    def airflow_conn_env(self, conn_id: str = "databricks_default") -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": json}`` for ``os.environ`` (e.g. via ``monkeypatch.setenv``)."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.connection_dict())}

    def client(self, **config: Any) -> Any:
        """A ``databricks.sdk.WorkspaceClient`` for this emulator; ``config`` goes to its ``Config``."""
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config

        return WorkspaceClient(config=Config(host=self.url, token=self.token, **config))

    def load_bundle(
        self,
        bundle_dir: str | pathlib.Path,
        target: str | None = None,
        variables: dict[str, str] | None = None,
    ) -> dict[str, int]:
        """Load (another) bundle; returns ``{bundle job key: job_id}``. Jobs of the same name are reset."""
        self.workspace.target = target
        self.workspace.variables = variables or {}
        return self.workspace.load_bundle(pathlib.Path(bundle_dir))

    def job_id(self, key_or_name: str) -> int:
        """The job id of a bundle job, by bundle key or by job name."""
        if key_or_name in self.workspace.bundle_job_ids:
            return self.workspace.bundle_job_ids[key_or_name]
        job_id = self.workspace.jobs.find_job_by_name(key_or_name)
        if job_id is None:
            raise KeyError(f"no job with bundle key or name {key_or_name!r}")
        return job_id

    def use_s3(self, endpoint_url: str | None) -> None:
        """Turn ``s3://`` parameter mirroring on (to this endpoint) or off (None)."""
        self.workspace.storage.endpoint_url = endpoint_url
        self.workspace.storage._client = None

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no run is active and no cluster is starting, running or terminating."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if not state["active_runs"] and not state["active_clusters"]:
                return
            time.sleep(0.05)
        raise TimeoutError(f"emulator not idle after {timeout}s: {self.state()['active_runs']} runs active")

    def reset(self) -> None:
        self.use_s3(None)
        self.workspace.reset()


@pytest.fixture(scope="session")
def databricks_emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """One emulator for the session (token generated here); tests use ``databricks_emulator``."""
    from airbricks.emulator.server import EmulatorServer

    server = EmulatorServer(
        state_dir=tmp_path_factory.mktemp("databricks-emulator"),
        token=secrets.token_urlsafe(24),
        cluster_start_seconds=0.2,
        retry_interval_cap=0.5,  # a bundle's 60 s min_retry_interval would only slow tests down
        spare_spark_drivers=1,  # the next cluster's Spark Connect server starts while tests run
        warm_up_spark_drivers=False,  # most test tasks never touch Spark: spare the CPU
    ).start()
    yield server
    server.stop()


@pytest.fixture
def databricks_bundle_dir() -> pathlib.Path | None:
    """The bundle loaded into ``databricks_emulator``; override it to load another one."""
    return DEFAULT_BUNDLE if (DEFAULT_BUNDLE / "databricks.yml").is_file() else None


@pytest.fixture
def databricks_emulator(
    databricks_emulator_server: EmulatorServer, databricks_bundle_dir: pathlib.Path | None
) -> Iterator[DatabricksEmulator]:
    """A freshly reset workspace on the session's emulator, with ``databricks_bundle_dir`` loaded."""
    emulator = DatabricksEmulator(databricks_emulator_server)
    emulator.workspace.bundle_dir = pathlib.Path(databricks_bundle_dir) if databricks_bundle_dir else None
    emulator.workspace.target = None
    emulator.workspace.variables = {}
    emulator.reset()
    yield emulator
    emulator.faults.clear()
    emulator.workspace.jobs.shutdown()  # cancel what the test left running; its processes die with it
