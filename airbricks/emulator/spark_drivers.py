"""Each emulator cluster's Spark driver process: started at RUNNING, stopped on terminate, killed on loss.

One ``sparkdriver.py`` process per running cluster, in its own process group with its JVM, working in
``<state-dir>/clusters/<cluster_id>/`` (Spark's warehouse and Derby files, ``driver-stdout.txt``,
``driver-stderr.txt``, and ``driver.json``, the gateway the cluster's tasks attach to).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

SPARK_DRIVER = str(pathlib.Path(__file__).with_name("sparkdriver.py"))
# Environment variables a task or driver must never inherit from the emulator process.
SECRET_ENV = ("DATABRICKS_TOKEN", "AIRBRICKS_EMULATOR_TOKEN", "DATABRICKS_HOST")
_KILL_GRACE_SECONDS = 3.0


def child_env() -> dict[str, str]:
    """The emulator's environment without its secrets, for task and driver processes."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env["AIRBRICKS_EMULATOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no __pycache__ in the bundle's source tree
    return env


def spark_submit_args(directory: pathlib.Path, driver_memory: str) -> str:
    """``PYSPARK_SUBMIT_ARGS`` of a small single-core local Spark, no UI, side files in ``directory``."""
    return (
        f"--master local[1] --driver-memory {driver_memory} "
        "--conf spark.ui.enabled=false --conf spark.sql.shuffle.partitions=1 "
        "--conf spark.default.parallelism=1 --conf spark.driver.host=127.0.0.1 "
        "--conf spark.driver.bindAddress=127.0.0.1 "
        # keep Spark's side files (warehouse, Derby) in the process's own directory, not in the bundle
        f"--conf spark.sql.warehouse.dir={shlex.quote(str(directory / 'spark-warehouse'))} "
        f"--conf {shlex.quote('spark.driver.extraJavaOptions=-Dderby.system.home=' + str(directory))} "
        "pyspark-shell"
    )


def kill_group(proc: subprocess.Popen[bytes], grace: float = _KILL_GRACE_SECONDS) -> None:
    """SIGTERM ``proc``'s process group now (SIGKILL with ``grace=0``) and SIGKILL it after ``grace``
    seconds, without blocking."""
    try:
        pgid = os.getpgid(proc.pid)
        os.killpg(pgid, signal.SIGKILL if grace <= 0 else signal.SIGTERM)
    except ProcessLookupError:
        return
    if grace <= 0:
        return

    def finish() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)

    timer = threading.Timer(grace, finish)
    timer.daemon = True
    timer.start()


@dataclass
class SparkDriver:
    cluster_id: str
    process: subprocess.Popen[bytes]
    directory: pathlib.Path
    stopping: bool = False
    exited: threading.Event = field(default_factory=threading.Event)

    @property
    def info_file(self) -> pathlib.Path:
        return self.directory / "driver.json"

    @property
    def ready(self) -> bool:
        return self.info_file.exists()

    def stderr_tail(self, limit: int = 2000) -> str:
        path = self.directory / "driver-stderr.txt"
        return path.read_bytes()[-limit:].decode("utf-8", "replace") if path.exists() else ""


class SparkDrivers:
    """Driver processes by cluster id.

    :param root: each driver works in ``root/<cluster_id>/``.
    :param driver_memory: ``--driver-memory`` of each driver's JVM.
    :param on_exit: called with the driver when its process ends without :meth:`stop` (it crashed, or its
        JVM could not start): the cluster manager terminates the cluster then.
    """

    def __init__(
        self,
        root: pathlib.Path,
        driver_memory: str = "512m",
        on_exit: Callable[[SparkDriver], None] | None = None,
    ):
        self.root = root
        self.driver_memory = driver_memory
        self.on_exit = on_exit
        self._drivers: dict[str, SparkDriver] = {}
        self._lock = threading.Lock()

    def start(self, cluster_id: str) -> SparkDriver:
        """A new driver for the cluster (a previous one is stopped first: restart)."""
        self.stop(cluster_id)
        directory = self.root / cluster_id
        directory.mkdir(parents=True, exist_ok=True)
        for stale in ("driver.json", "driver.json.partial"):
            (directory / stale).unlink(missing_ok=True)
        env = child_env()
        env["PYSPARK_SUBMIT_ARGS"] = spark_submit_args(directory, self.driver_memory)
        with (
            (directory / "driver-stdout.txt").open("ab") as out,
            (directory / "driver-stderr.txt").open("ab") as err,
        ):
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [sys.executable, SPARK_DRIVER, str(directory / "driver.json")],
                stdin=subprocess.PIPE,  # its end of the pipe closes when the emulator stops or dies
                stdout=out,
                stderr=err,
                env=env,
                cwd=str(directory),
                start_new_session=True,  # own process group: stopping it stops its JVM too
            )
        driver = SparkDriver(cluster_id, process, directory)
        with self._lock:
            self._drivers[cluster_id] = driver
        threading.Thread(target=self._watch, args=(driver,), name=f"driver-{cluster_id}", daemon=True).start()
        return driver

    def _watch(self, driver: SparkDriver) -> None:
        driver.process.wait()
        driver.exited.set()
        with self._lock:
            if self._drivers.get(driver.cluster_id) is driver:
                del self._drivers[driver.cluster_id]
        if not driver.stopping and self.on_exit is not None:
            self.on_exit(driver)

    def get(self, cluster_id: str) -> SparkDriver | None:
        with self._lock:
            return self._drivers.get(cluster_id)

    def stop(self, cluster_id: str, kill: bool = False) -> SparkDriver | None:
        """Stop the cluster's driver: SIGTERM (SIGKILL after a grace period), or SIGKILL now with ``kill``."""
        with self._lock:
            driver = self._drivers.pop(cluster_id, None)
        if driver is None:
            return None
        driver.stopping = True
        with contextlib.suppress(OSError):
            if driver.process.stdin is not None:
                driver.process.stdin.close()
        kill_group(driver.process, grace=0 if kill else _KILL_GRACE_SECONDS)
        return driver

    def stop_all(self) -> None:
        with self._lock:
            cluster_ids = list(self._drivers)
        for cluster_id in cluster_ids:
            self.stop(cluster_id)
