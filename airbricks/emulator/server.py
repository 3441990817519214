"""The emulator's workspace state and a uvicorn server that runs it in a background thread."""

from __future__ import annotations

import logging
import pathlib
import secrets
import tempfile
import threading
import time
from typing import Any

from airbricks.emulator.bundle import Bundle, load_bundle
from airbricks.emulator.clusters import ACTIVE_STATES, ClusterManager
from airbricks.emulator.faults import Faults
from airbricks.emulator.files import LocalFiles
from airbricks.emulator.jobs import JobsService
from airbricks.emulator.spark_drivers import SparkDrivers
from airbricks.emulator.storage import StorageMapper

#: Seconds the emulator keeps an idle HTTP connection open (nginx's default keepalive_timeout).
IDLE_CONNECTION_SECONDS = 75

log = logging.getLogger(__name__)


class Workspace:
    """Everything one emulated workspace holds: clusters, jobs/runs, files, faults, the bundle.

    :param state_dir: root of local state (``workspace/`` for Volumes and DBFS, ``runs/`` for task logs).
    :param token: the only bearer token accepted.
    :param bundle_dir: Asset Bundle whose jobs are created at start (and again on :meth:`reset`).
    :param target: bundle target; default is the target marked ``default: true``.
    :param variables: bundle variable overrides.
    :param s3_endpoint_url: S3 endpoint for ``s3://`` parameter mirroring (None disables it).
    :param storage_dir: root of the mirrors (default ``<state_dir>/storage``).
    :param cluster_start_seconds: time a cluster spends PENDING before RUNNING.
    :param spark_driver_memory: driver memory of each cluster's Spark Connect server (and of a serverless
        task's own ``local[1]`` session).
    :param spare_spark_drivers: Spark Connect servers kept started ahead, so that a cluster reaching RUNNING
        finds its Spark up already (each costs a JVM: about 300 MB and seconds of CPU to start).
    :param refill_spare_spark_drivers: start a new spare each time a cluster takes one (off: the spares
        started ahead serve the first clusters, later ones start their own).
    :param warm_up_spark_drivers: run one small query on each spare first, so that the first task on it does
        not pay the JVM's first-query cost (class loading, JIT).
    :param retry_interval_cap: upper bound (seconds) of a task's ``min_retry_interval_millis``; None keeps
        the bundle's interval (tests cap it so a retried failure does not wait a minute).
    """

    def __init__(
        self,
        state_dir: pathlib.Path,
        token: str,
        bundle_dir: pathlib.Path | None = None,
        target: str | None = None,
        variables: dict[str, str] | None = None,
        s3_endpoint_url: str | None = None,
        storage_dir: pathlib.Path | None = None,
        cluster_start_seconds: float = 1.0,
        spark_driver_memory: str = "512m",
        retry_interval_cap: float | None = None,
        spare_spark_drivers: int = 0,
        warm_up_spark_drivers: bool = True,
        refill_spare_spark_drivers: bool = True,
    ):
        if not token:
            raise ValueError("the emulator needs a non-empty token")
        self.state_dir = pathlib.Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.bundle_dir = pathlib.Path(bundle_dir) if bundle_dir else None
        self.target = target
        self.variables = variables or {}
        self.faults = Faults()
        self.spark_drivers = SparkDrivers(
            self.state_dir / "clusters",
            driver_memory=spark_driver_memory,
            spares=spare_spark_drivers,
            warm_up=warm_up_spark_drivers,
            refill_spares=refill_spare_spark_drivers,
        )
        self.clusters = ClusterManager(
            self.faults, start_seconds=cluster_start_seconds, drivers=self.spark_drivers
        )
        self.spark_drivers.prestart()
        self.files = LocalFiles(self.state_dir / "workspace")
        self.storage = StorageMapper(s3_endpoint_url, pathlib.Path(storage_dir or self.state_dir / "storage"))
        self.jobs = JobsService(
            self.clusters,
            self.faults,
            self.state_dir,
            self.storage,
            spark_driver_memory=spark_driver_memory,
            retry_interval_cap=retry_interval_cap,
        )
        self.bundle: Bundle | None = None
        self.bundle_job_ids: dict[str, int] = {}
        self.load_bundle()

    def load_bundle(self, bundle_dir: pathlib.Path | None = None) -> dict[str, int]:
        """(Re)load a bundle and create its jobs; returns ``{bundle job key: job_id}``."""
        if bundle_dir is not None:
            self.bundle_dir = pathlib.Path(bundle_dir)
        if self.bundle_dir is None:
            return {}
        self.bundle = load_bundle(self.bundle_dir, self.target, self.variables)
        self.jobs.bundle_root = self.bundle.root
        for key, settings in self.bundle.jobs.items():
            existing = self.jobs.find_job_by_name(settings["name"])
            if existing is not None:
                self.jobs.reset_job(existing, settings)
                self.bundle_job_ids[key] = existing
            else:
                self.bundle_job_ids[key] = self.jobs.create_job(settings)
        return dict(self.bundle_job_ids)

    def state(self) -> dict[str, Any]:
        clusters = self.clusters.list()
        jobs = self.jobs.snapshot()
        return {
            "clusters": [
                {
                    "cluster_id": c["cluster_id"],
                    "cluster_name": c.get("cluster_name"),
                    "state": c["state"],
                    "cluster_source": c["cluster_source"],
                    "termination_reason": c.get("termination_reason"),
                }
                for c in clusters
            ],
            "active_clusters": [c["cluster_id"] for c in clusters if c["state"] in ACTIVE_STATES],
            "jobs": jobs["jobs"],
            "runs": jobs["runs"],
            "active_runs": [
                r["run_id"]
                for r in jobs["runs"]
                if r["life_cycle_state"] not in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
            ],
            "bundle_jobs": dict(self.bundle_job_ids),
            "faults": self.faults.snapshot(),
        }

    def reset(self) -> None:
        """Back to a fresh workspace: no faults, runs, clusters or files; bundle jobs re-created."""
        self.faults.clear()
        self.jobs.shutdown(reset=True)
        self.clusters.reset()
        self.files.reset()  # Volumes and DBFS start empty too
        self.bundle_job_ids = {}
        self.load_bundle()

    def close(self) -> None:
        self.jobs.shutdown()
        self.clusters.close()


class EmulatorServer:
    """Serves a :class:`Workspace` over HTTP with uvicorn in a daemon thread.

    :param state_dir: workspace root (Volumes, DBFS, run logs); a new temp dir if not given.
    :param host: bind address (keep 127.0.0.1: the emulator has no TLS).
    :param port: TCP port; 0 picks a free one (read it back from :attr:`port`).
    :param token: accepted bearer token; generated if not given (never logged).
    :param kwargs: passed to :class:`Workspace`.
    """

    def __init__(
        self,
        state_dir: pathlib.Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        **kwargs: Any,
    ):
        self.host = host
        self._requested_port = port
        self.token = token or secrets.token_urlsafe(24)
        if state_dir is None:
            state_dir = pathlib.Path(tempfile.mkdtemp(prefix="airbricks-emulator-"))
        self.workspace = Workspace(state_dir=state_dir, token=self.token, **kwargs)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmulatorServer:
        import uvicorn  # the server is imported only where it runs

        from airbricks.emulator.app import build_app

        config = uvicorn.Config(
            build_app(self.workspace),
            host=self.host,
            port=self._requested_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            # A client polling every 5-30 s keeps its connection, as in front of a workspace (uvicorn's own
            # default, 5 s, closes it between two polls: each poll then connects again).
            timeout_keep_alive=IDLE_CONNECTION_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.run, name="databricks-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"Databricks emulator failed to start on {self.host}:{self._requested_port}"
                )
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self.workspace.jobs.base_url = self.url
        return self

    def stop(self) -> None:
        self.workspace.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
