"""Each emulator cluster's Spark: one Spark Connect server process, started at RUNNING, stopped on terminate.

A running cluster is one ``spark-submit`` of Spark's own ``SparkConnectServer`` (the driver JVM, from the
``spark-connect`` jar pyspark ships), in its own process group under ``spark_watch.py`` (which stops it
when the emulator goes away, even killed), bound to 127.0.0.1 on a free port and working
in ``<state-dir>/clusters/driver-<n>/`` (``driver-stdout.txt``, ``driver-stderr.txt``, Spark's warehouse and
Derby files; ``<state-dir>/clusters/<cluster_id>`` links to it). Its tasks reach it with
``SPARK_REMOTE=sc://127.0.0.1:<port>``, the way Databricks Connect reaches a cluster, so
``SparkSession.builder.getOrCreate()`` in unchanged job code returns a session on the cluster's JVM.

Starting a JVM costs seconds of CPU, so :class:`SparkDrivers` can keep ``spares`` servers started ahead; a
cluster reaching RUNNING takes one (a fresh process no cluster used before) and a new spare starts behind it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
SPARK_WATCH = str(pathlib.Path(__file__).with_name("spark_watch.py"))
# Environment variables a task or driver must never inherit from the emulator process.
SECRET_ENV = ("DATABRICKS_TOKEN", "AIRBRICKS_EMULATOR_TOKEN", "DATABRICKS_HOST")
_KILL_GRACE_SECONDS = 3.0
_LOCAL_CONF = (
    "spark.ui.enabled=false",
    "spark.sql.shuffle.partitions=1",
    "spark.default.parallelism=1",
    "spark.driver.host=127.0.0.1",
    "spark.driver.bindAddress=127.0.0.1",
    "spark.log.level=WARN",
)
# Run once against a spare server before any cluster takes it: a JVM's first queries (class loading, JIT,
# code generation) take seconds, which would otherwise land on the first task of the cluster that takes it.
_WARM_UP = """
import sys
from pyspark.sql import SparkSession, functions as F
spark = SparkSession.builder.getOrCreate()
out = sys.argv[1]
df = spark.range(200).select((F.col("id") % 7).alias("k"), F.col("id").cast("string").alias("v"))
df.write.mode("overwrite").json(out + "/json")
back = spark.read.json(out + "/json")
back.groupBy("k").agg(F.count("*").alias("n"), F.max("v")).write.mode("overwrite").parquet(out + "/parquet")
spark.read.parquet(out + "/parquet").orderBy("k").collect()
spark.stop()
"""


def child_env() -> dict[str, str]:
    """The emulator's environment without its secrets, for task and driver processes."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env["AIRBRICKS_EMULATOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no __pycache__ in the bundle's source tree
    for name in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "PYSPARK_SUBMIT_ARGS"):
        env.pop(name, None)  # each child gets exactly the Spark it is meant to use
    return env


# The client compiler only and the serial collector: a small local[1] JVM starts with about half the CPU
# (4.5 s instead of 8.8 s to a listening Spark Connect server, measured on 2 cores), which matters when a
# test session or the demo starts one per cluster; the optimising compiler's gains need longer jobs.
_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:CICompilerCount=1"


def _side_file_conf(directory: pathlib.Path) -> list[str]:
    # keep Spark's side files (warehouse, Derby) in the process's own directory, not in the bundle
    return [
        f"spark.sql.warehouse.dir={directory / 'spark-warehouse'}",
        f"spark.driver.extraJavaOptions=-Dderby.system.home={directory} {_JVM_OPTIONS}",
    ]


def spark_submit_args(directory: pathlib.Path, driver_memory: str) -> str:
    """``PYSPARK_SUBMIT_ARGS`` of a small single-core local Spark, no UI, side files in ``directory``."""
    confs = [*_LOCAL_CONF, *_side_file_conf(directory)]
    return (
        f"--master local[1] --driver-memory {driver_memory} "
        + " ".join(f"--conf {shlex.quote(c)}" for c in confs)
        + " pyspark-shell"
    )


def spark_submit() -> str:
    """pyspark's ``bin/spark-submit`` (found without importing pyspark)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyspark is not installed: emulator clusters need it for their Spark process")
    return str(pathlib.Path(spec.origin).parent / "bin" / "spark-submit")


def connect_server_command(directory: pathlib.Path, driver_memory: str, port: int) -> list[str]:
    """``spark-submit`` of a Spark Connect server: ``local[1]``, bound to 127.0.0.1:``port``."""
    confs = [
        *_LOCAL_CONF,
        *_side_file_conf(directory),
        "spark.connect.grpc.binding.address=127.0.0.1",
        f"spark.connect.grpc.binding.port={port}",
    ]
    command = [spark_submit(), "--class", CONNECT_SERVER_CLASS, "--name", f"emulator {directory.name}"]
    command += ["--master", "local[1]", "--driver-memory", driver_memory]
    for conf in confs:
        command += ["--conf", conf]
    return [*command, "spark-internal"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    """One Spark Connect server process."""

    name: str
    process: subprocess.Popen[bytes]
    directory: pathlib.Path
    port: int
    cluster_id: str | None = None
    stopping: bool = False
    exited: threading.Event = field(default_factory=threading.Event)
    listening: threading.Event = field(default_factory=threading.Event)
    warmed: threading.Event = field(default_factory=threading.Event)

    @property
    def remote(self) -> str:
        """The ``SPARK_REMOTE`` of this server."""
        return f"sc://127.0.0.1:{self.port}"

    @property
    def ready(self) -> bool:
        return self.listening.is_set() and not self.exited.is_set()

    def wait_ready(self, timeout: float, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """True once the server accepts connections; False if it exited, ``cancelled()`` or timed out."""
        deadline = time.monotonic() + timeout
        while not self.listening.wait(0.1):
            if self.exited.is_set() or cancelled() or time.monotonic() > deadline:
                return False
        return not self.exited.is_set()

    def stderr_tail(self, limit: int = 2000) -> str:
        path = self.directory / "driver-stderr.txt"
        return path.read_bytes()[-limit:].decode("utf-8", "replace") if path.exists() else ""


class SparkDrivers:
    """Spark Connect server processes by cluster id, plus ``spares`` started ahead.

    :param root: each server works in ``root/driver-<n>/``.
    :param driver_memory: ``--driver-memory`` of each server's JVM.
    :param on_exit: called with the driver when a cluster's server ends without :meth:`stop` (it crashed,
        or its JVM could not start): the cluster manager terminates the cluster then.
    :param spares: servers kept started ahead for the next clusters (0: each starts at its cluster's RUNNING).
    :param warm_up: run one small query on each spare before a cluster takes it (seconds of CPU ahead).
    :param refill_spares: start a new spare when a cluster takes one. Off for a workspace whose clusters are
        known ahead (the demo's two job clusters): a replacement's JVM would only compete with them for CPU.
    """

    def __init__(
        self,
        root: pathlib.Path,
        driver_memory: str = "512m",
        on_exit: Callable[[SparkDriver], None] | None = None,
        spares: int = 0,
        warm_up: bool = True,
        refill_spares: bool = True,
    ):
        self.root = root
        self.warm_up = warm_up
        self.refill_spares = refill_spares
        self.driver_memory = driver_memory
        self.on_exit = on_exit
        self.spares = spares
        self._drivers: dict[str, SparkDriver] = {}
        self._spares: list[SparkDriver] = []
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False

    def prestart(self) -> None:
        """Start spares up to ``spares`` (in the background: returns at once)."""
        threading.Thread(target=self._fill_spares, name="spark-spares", daemon=True).start()

    def _fill_spares(self) -> None:
        while True:
            with self._lock:
                self._spares = [d for d in self._spares if not d.exited.is_set()]
                if self._closed or len(self._spares) >= self.spares:
                    return
                driver = self._launch(warm_up=self.warm_up)
                self._spares.append(driver)

    def _launch(self, warm_up: bool = False) -> SparkDriver:
        name = f"driver-{next(self._numbers)}"
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        with (
            (directory / "driver-stdout.txt").open("ab") as out,
            (directory / "driver-stderr.txt").open("ab") as err,
        ):
            process = subprocess.Popen(  # noqa: S603 - our interpreter, pyspark's own spark-submit
                [sys.executable, SPARK_WATCH, *connect_server_command(directory, self.driver_memory, port)],
                stdin=subprocess.PIPE,  # closes when the emulator stops or dies: the watcher stops Spark
                stdout=out,
                stderr=err,
                env=child_env(),
                cwd=str(directory),
                start_new_session=True,  # own process group: stopping it stops its JVM too
            )
        driver = SparkDriver(name, process, directory, port)
        threading.Thread(target=self._watch, args=(driver,), name=f"spark-{name}", daemon=True).start()
        threading.Thread(
            target=self._probe, args=(driver, warm_up), name=f"spark-{name}-probe", daemon=True
        ).start()
        return driver

    @staticmethod
    def _probe(driver: SparkDriver, warm_up: bool) -> None:
        """Set ``listening`` once the server's gRPC port accepts a connection, then warm a spare up."""
        while not driver.listening.is_set():
            if driver.exited.is_set() or driver.stopping:
                return
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", driver.port), 0.5):
                driver.listening.set()
                break
            time.sleep(0.1)
        if warm_up:
            env = {**child_env(), "SPARK_REMOTE": driver.remote}
            with (driver.directory / "warm-up.txt").open("ab") as log:
                subprocess.run(  # noqa: S603 - our own interpreter; failures only leave the JVM cold
                    [sys.executable, "-c", _WARM_UP, str(driver.directory / "warm-up")],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    cwd=str(driver.directory),
                    timeout=300,
                    check=False,
                )
        driver.warmed.set()

    def start(self, cluster_id: str) -> SparkDriver:
        """The cluster's server: a spare if one is alive, else a new process (a previous one is stopped)."""
        self.stop(cluster_id)
        with self._lock:
            alive = [d for d in self._spares if not d.exited.is_set()]
            driver = alive.pop(0) if alive else self._launch()
            self._spares = alive
            driver.cluster_id = cluster_id
            self._drivers[cluster_id] = driver
        link = self.root / cluster_id
        with contextlib.suppress(OSError):
            link.unlink(missing_ok=True)
            link.symlink_to(driver.directory.name)
        if self.spares and self.refill_spares:
            self.prestart()
        return driver

    def _watch(self, driver: SparkDriver) -> None:
        driver.process.wait()
        driver.exited.set()
        with self._lock:
            owned = driver.cluster_id is not None and self._drivers.get(driver.cluster_id) is driver
            if owned:
                del self._drivers[driver.cluster_id]  # type: ignore[arg-type]
        if owned and not driver.stopping and self.on_exit is not None:
            self.on_exit(driver)

    def get(self, cluster_id: str) -> SparkDriver | None:
        with self._lock:
            return self._drivers.get(cluster_id)

    def stop(self, cluster_id: str, kill: bool = False) -> SparkDriver | None:
        """Stop the cluster's server: SIGTERM (SIGKILL after a grace period), or SIGKILL now with ``kill``."""
        with self._lock:
            driver = self._drivers.pop(cluster_id, None)
        if driver is not None:
            self._end(driver, kill)
        return driver

    @staticmethod
    def _end(driver: SparkDriver, kill: bool) -> None:
        driver.stopping = True
        with contextlib.suppress(OSError):
            if driver.process.stdin is not None:
                driver.process.stdin.close()
        kill_group(driver.process, grace=0 if kill else _KILL_GRACE_SECONDS)

    def stop_clusters(self) -> None:
        """Stop every cluster's server; spares stay (a workspace reset)."""
        with self._lock:
            drivers, self._drivers = list(self._drivers.values()), {}
        for driver in drivers:
            self._end(driver, kill=False)

    def stop_all(self) -> None:
        """Stop every server, spares too (the emulator is going away)."""
        with self._lock:
            self._closed = True
            spares, self._spares = self._spares, []
        self.stop_clusters()
        for driver in spares:
            self._end(driver, kill=False)
