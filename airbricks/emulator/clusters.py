"""Clusters: the state machine PENDING→RUNNING→(RESTARTING)→TERMINATING→TERMINATED, events, faults.

A cluster is a record whose state changes on timers (so clients see the same transitions and waiting
behaviour as on Databricks) plus, while it is RUNNING, one real Spark process that its tasks share: a Spark
Connect server (:mod:`airbricks.emulator.spark_drivers`) started when the cluster reaches RUNNING, stopped
when it terminates, killed outright (SIGKILL of its process group) when it is lost. A server that dies on its
own terminates its cluster.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airbricks.emulator.errors import coerce_int, invalid, invalid_state, not_found
from airbricks.emulator.faults import Faults
from airbricks.emulator.spark_drivers import SparkDriver, SparkDrivers

ACTIVE_STATES = ("PENDING", "RUNNING", "RESTARTING", "RESIZING", "TERMINATING")
_SPEC_FIELDS = (
    "cluster_name",
    "spark_version",
    "node_type_id",
    "driver_node_type_id",
    "num_workers",
    "autoscale",
    "spark_conf",
    "spark_env_vars",
    "custom_tags",
    "autotermination_minutes",
    "data_security_mode",
    "single_user_name",
    "runtime_engine",
    "instance_pool_id",
    "driver_instance_pool_id",
    "policy_id",
    "aws_attributes",
    "azure_attributes",
    "gcp_attributes",
    "init_scripts",
    "cluster_log_conf",
    "enable_elastic_disk",
    "kind",
    "is_single_node",
    "use_ml_runtime",
)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Cluster:
    cluster_id: str
    spec: dict[str, Any]
    source: str
    state: str = "PENDING"
    state_message: str = ""
    start_time: int = field(default_factory=_now_ms)
    terminated_time: int | None = None
    termination_reason: dict[str, Any] | None = None
    generation: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    spark_context_id: int = 0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.spec,
            "cluster_id": self.cluster_id,
            "cluster_name": self.spec.get("cluster_name", ""),
            "state": self.state,
            "state_message": self.state_message,
            "start_time": self.start_time,
            "cluster_source": self.source,
            "creator_user_name": "emulator@localhost",
            "default_tags": {
                "Vendor": "Databricks",
                "Creator": "emulator@localhost",
                "ClusterId": self.cluster_id,
            },
            "spark_context_id": self.spark_context_id,
            "driver_healthy": self.state == "RUNNING",
        }
        body.setdefault("num_workers", 0)
        if self.terminated_time is not None:
            body["terminated_time"] = self.terminated_time
        if self.termination_reason is not None:
            body["termination_reason"] = self.termination_reason
        return body


class ClusterManager:
    """All clusters of the workspace. Thread-safe; state changes are driven by daemon timers.

    :param start_seconds: how long PENDING/RESTARTING lasts (faults may make it longer).
    :param terminate_seconds: how long TERMINATING lasts.
    :param drivers: the Spark driver processes of running clusters; None runs clusters without one
        (their tasks then start a Spark session of their own, as serverless tasks do).
    """

    def __init__(
        self,
        faults: Faults,
        start_seconds: float = 1.0,
        terminate_seconds: float = 0.2,
        drivers: SparkDrivers | None = None,
    ):
        self.faults = faults
        self.start_seconds = start_seconds
        self.terminate_seconds = terminate_seconds
        self.drivers = drivers
        if drivers is not None:
            drivers.on_exit = self._driver_exited
        self._clusters: dict[str, Cluster] = {}
        self._cond = threading.Condition()
        self._timers: set[threading.Timer] = set()

    # -- helpers --------------------------------------------------------------------------------------
    def _event(self, cluster: Cluster, kind: str, details: dict[str, Any] | None = None) -> None:
        cluster.events.append(
            {"cluster_id": cluster.cluster_id, "timestamp": _now_ms(), "type": kind, "details": details or {}}
        )

    def _set(self, cluster: Cluster, state: str, message: str = "") -> None:
        cluster.state = state
        cluster.state_message = message
        self._cond.notify_all()

    def _later(self, cluster: Cluster, delay: float, fn: Callable[[], None]) -> None:
        generation = cluster.generation

        def fire() -> None:
            with self._cond:
                self._timers.discard(timer)
                if cluster.generation == generation and cluster.cluster_id in self._clusters:
                    fn()

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        self._timers.add(timer)
        timer.start()

    def _get(self, cluster_id: Any) -> Cluster:
        if not cluster_id or not isinstance(cluster_id, str):
            raise invalid("Missing required field: cluster_id")
        cluster = self._clusters.get(cluster_id)
        if cluster is None:
            raise not_found(f"Cluster {cluster_id} does not exist")
        return cluster

    def _launch(self, cluster: Cluster, event: str) -> None:
        """Go PENDING now, RUNNING (or TERMINATED on an injected launch failure) after the start delay."""
        cluster.generation += 1
        self._stop_driver(cluster.cluster_id)  # a restart starts a fresh one at RUNNING
        cluster.start_time = _now_ms()
        cluster.terminated_time = None
        cluster.termination_reason = None
        self._set(
            cluster, "PENDING" if event != "RESTARTING" else "RESTARTING", "Finding instances for new nodes"
        )
        self._event(cluster, event, {"attributes": cluster.spec} if event == "CREATING" else None)
        failure = self.faults.take_cluster_start_failure()
        delay = self.faults.cluster_start_delay(self.start_seconds)

        def done() -> None:
            if failure is not None:
                reason = {
                    "code": failure.code,
                    "type": failure.type,
                    "parameters": {"databricks_error_message": failure.message},
                }
                if failure.state == "ERROR":
                    cluster.termination_reason = reason
                    cluster.terminated_time = _now_ms()
                    self._set(cluster, "ERROR", failure.message)
                    self._event(cluster, "TERMINATING", {"reason": reason})
                else:
                    self._terminate_now(cluster, reason, failure.message)
                return
            cluster.spark_context_id = secrets.randbits(62)
            self._set(cluster, "RUNNING")
            if self.drivers is not None:
                self.drivers.start(cluster.cluster_id)
            self._event(cluster, "RUNNING", {"current_num_workers": cluster.spec.get("num_workers", 0)})

        self._later(cluster, delay, done)

    def _terminate_now(self, cluster: Cluster, reason: dict[str, Any], message: str = "") -> None:
        cluster.generation += 1
        self._stop_driver(cluster.cluster_id)
        cluster.termination_reason = reason
        self._set(cluster, "TERMINATING", message)
        self._event(cluster, "TERMINATING", {"reason": reason})

        def done() -> None:
            cluster.terminated_time = _now_ms()
            self._set(
                cluster, "TERMINATED", message
            )  # Databricks has no TERMINATED event: TERMINATING is last

        self._later(cluster, self.terminate_seconds, done)

    def _stop_driver(self, cluster_id: str, kill: bool = False) -> None:
        if self.drivers is not None:
            self.drivers.stop(cluster_id, kill=kill)

    def _driver_exited(self, driver: SparkDriver) -> None:
        """A driver died without being stopped: its cluster terminates, as a Databricks cluster whose
        driver is gone does."""
        code = driver.process.returncode
        with self._cond:
            cluster = self._clusters.get(driver.cluster_id)
            if cluster is None or cluster.state != "RUNNING":
                return
            reason_code = "DRIVER_UNRESPONSIVE" if driver.listening.is_set() else "SPARK_STARTUP_FAILURE"
            tail = driver.stderr_tail().strip().splitlines()
            message = f"Spark driver exited with code {code}" + (f": {tail[-1]}" if tail else "")
            self._event(cluster, "DRIVER_NOT_RESPONDING", {"reason": {"code": reason_code}})
            self._terminate_now(
                cluster,
                {
                    "code": reason_code,
                    "type": "SERVICE_FAULT",
                    "parameters": {"databricks_error_message": message},
                },
                message,
            )

    # -- API operations -------------------------------------------------------------------------------
    def create(self, body: dict[str, Any], source: str = "API") -> Cluster:
        if not body.get("spark_version"):
            raise invalid("Missing required field: spark_version")
        body = dict(body)
        coerce_int(body, "num_workers", "cluster")
        coerce_int(body, "autotermination_minutes", "cluster")
        spec = {k: v for k, v in body.items() if k in _SPEC_FIELDS}
        cluster_id = f"{time.strftime('%m%d')}-{time.strftime('%H%M%S')}-{secrets.token_hex(4)}"
        cluster = Cluster(cluster_id=cluster_id, spec=spec, source=source)
        with self._cond:
            self._clusters[cluster_id] = cluster
            self._launch(cluster, "CREATING")
        return cluster

    def get(self, cluster_id: Any) -> dict[str, Any]:
        with self._cond:
            return self._get(cluster_id).to_json()

    def list(self) -> list[dict[str, Any]]:
        with self._cond:
            return [c.to_json() for c in sorted(self._clusters.values(), key=lambda c: -c.start_time)]

    def start(self, cluster_id: Any) -> None:
        with self._cond:
            cluster = self._get(cluster_id)
            if cluster.state in ("PENDING", "RUNNING", "RESTARTING", "RESIZING"):
                raise invalid_state(f"Cluster {cluster_id} is in unexpected state {cluster.state}.")
            if cluster.state == "TERMINATING":
                raise invalid_state(f"Cluster {cluster_id} is in unexpected state TERMINATING.")
            self._launch(cluster, "STARTING")

    def restart(self, cluster_id: Any) -> None:
        with self._cond:
            cluster = self._get(cluster_id)
            if cluster.state != "RUNNING":
                raise invalid_state(f"Cluster {cluster_id} is in unexpected state {cluster.state}.")
            self._launch(cluster, "RESTARTING")

    def edit(self, body: dict[str, Any]) -> None:
        with self._cond:
            cluster = self._get(body.get("cluster_id"))
            if not body.get("spark_version"):
                raise invalid("Missing required field: spark_version")
            if cluster.state in ("PENDING", "RESTARTING", "TERMINATING", "RESIZING"):
                raise invalid_state(f"Cluster {cluster.cluster_id} is in unexpected state {cluster.state}.")
            cluster.spec = {k: v for k, v in body.items() if k in _SPEC_FIELDS}
            self._event(cluster, "EDITED", {"attributes": cluster.spec})
            if cluster.state == "RUNNING":
                self._launch(cluster, "RESTARTING")

    def terminate(self, cluster_id: Any, reason: dict[str, Any] | None = None, message: str = "") -> None:
        with self._cond:
            cluster = self._get(cluster_id)
            if cluster.state in ("TERMINATING", "TERMINATED"):
                return
            reason = reason or {
                "code": "USER_REQUEST",
                "type": "SUCCESS",
                "parameters": {"username": "emulator@localhost"},
            }
            self._terminate_now(cluster, reason, message)

    def permanent_delete(self, cluster_id: Any) -> None:
        with self._cond:
            cluster = self._get(cluster_id)
            cluster.generation += 1
            self._stop_driver(cluster.cluster_id)
            del self._clusters[cluster.cluster_id]
            self._cond.notify_all()

    def lose(self, cluster_id: str, code: str, type_: str, message: str) -> None:
        """An injected loss: the cluster dies under its running tasks."""
        with self._cond:
            cluster = self._clusters.get(cluster_id)
            if cluster is None or cluster.state in ("TERMINATING", "TERMINATED"):
                return
            self._stop_driver(cluster_id, kill=True)  # for real: the driver and its JVM die now
            self._event(cluster, "DRIVER_NOT_RESPONDING", {"reason": {"code": code}})
            self._terminate_now(
                cluster,
                {"code": code, "type": type_, "parameters": {"databricks_error_message": message}},
                message,
            )

    def events(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            cluster = self._get(body.get("cluster_id"))
            events = list(cluster.events)
        if body.get("start_time"):
            events = [e for e in events if e["timestamp"] >= int(body["start_time"])]
        if body.get("end_time"):
            events = [e for e in events if e["timestamp"] <= int(body["end_time"])]
        if body.get("event_types"):
            wanted = set(body["event_types"])
            events = [e for e in events if e["type"] in wanted]
        order = str(body.get("order") or "DESC").upper()
        if order not in ("ASC", "DESC"):
            raise invalid(f"order must be ASC or DESC, got {body.get('order')!r}")
        if order == "DESC":
            events.reverse()  # stored oldest first; equal timestamps keep their real order
        limit = int(body.get("page_size") or body.get("limit") or 50)
        if not 1 <= limit <= 500:
            raise invalid(f"limit must be between 1 and 500, got {limit}")
        token = body.get("page_token")
        offset = int(token) if token else int(body.get("offset") or 0)
        page = events[offset : offset + limit]
        out: dict[str, Any] = {"events": page, "total_count": len(events)}
        if offset + limit < len(events):
            out["next_page"] = {
                **{k: v for k, v in body.items() if k != "page_token"},
                "offset": offset + limit,
                "limit": limit,
            }
            out["next_page_token"] = str(offset + limit)
        return out

    # -- used by the run engine -----------------------------------------------------------------------
    def wait_running(self, cluster_id: str, timeout: float, cancelled: Callable[[], bool]) -> Cluster:
        """Block until RUNNING; raise :class:`ClusterFailed` if it terminates or errors first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                cluster = self._clusters.get(cluster_id)
                if cluster is None:
                    raise ClusterFailed(
                        cluster_id, {"code": "CLUSTER_DOES_NOT_EXIST"}, "Cluster does not exist"
                    )
                if cluster.state == "RUNNING":
                    return cluster
                if cluster.state in ("TERMINATING", "TERMINATED", "ERROR") and cluster.termination_reason:
                    raise ClusterFailed(cluster_id, cluster.termination_reason, cluster.state_message)
                if cancelled() or time.monotonic() > deadline:
                    raise ClusterFailed(cluster_id, {"code": "CANCELED"}, "Stopped waiting for the cluster")
                self._cond.wait(0.1)

    def ensure_started(self, cluster_id: str) -> None:
        """For ``existing_cluster_id`` tasks: start a TERMINATED cluster, as Databricks does."""
        with self._cond:
            cluster = self._get(cluster_id)
            if cluster.state == "TERMINATED":
                self._launch(cluster, "STARTING")

    def state_of(self, cluster_id: str) -> str | None:
        with self._cond:
            cluster = self._clusters.get(cluster_id)
            return cluster.state if cluster else None

    def reason_of(self, cluster_id: str) -> dict[str, Any] | None:
        with self._cond:
            cluster = self._clusters.get(cluster_id)
            return cluster.termination_reason if cluster else None

    def spark_driver(self, cluster_id: str) -> SparkDriver | None:
        """The running driver process of the cluster, if it has one."""
        return self.drivers.get(cluster_id) if self.drivers is not None else None

    def wait_spark(
        self, cluster_id: str, timeout: float, cancelled: Callable[[], bool]
    ) -> SparkDriver | None:
        """The RUNNING cluster's Spark server once it accepts connections (None: clusters without one).

        Raises :class:`ClusterFailed` when the server dies first (its cluster terminates then)."""
        driver = self.spark_driver(cluster_id)
        if driver is None:
            if self.drivers is None:
                return None
            raise ClusterFailed(
                cluster_id, self.reason_of(cluster_id) or {"code": "DRIVER_UNAVAILABLE"}, "No Spark driver"
            )
        if driver.wait_ready(timeout, cancelled):
            return driver
        if cancelled():
            raise ClusterFailed(cluster_id, {"code": "CANCELED"}, "Stopped waiting for the cluster")
        tail = driver.stderr_tail().strip().splitlines()
        message = "Spark driver did not start" + (f": {tail[-1]}" if tail else "")
        raise ClusterFailed(cluster_id, {"code": "SPARK_STARTUP_FAILURE"}, message)

    def driver_pid(self, cluster_id: str) -> int | None:
        driver = self.spark_driver(cluster_id)
        return driver.process.pid if driver is not None else None

    def exists(self, cluster_id: str) -> bool:
        with self._cond:
            return cluster_id in self._clusters

    def reset(self) -> None:
        with self._cond:
            for cluster in self._clusters.values():
                cluster.generation += 1
            for timer in list(self._timers):
                timer.cancel()
            self._timers.clear()
            self._clusters.clear()
        if self.drivers is not None:
            self.drivers.stop_clusters()

    def close(self) -> None:
        """Stop every driver process (the emulator is going away)."""
        if self.drivers is not None:
            self.drivers.stop_all()


class ClusterFailed(Exception):
    def __init__(self, cluster_id: str, reason: dict[str, Any], message: str):
        super().__init__(f"Cluster {cluster_id} failed: {reason.get('code')} {message}".strip())
        self.cluster_id = cluster_id
        self.reason = reason
        self.message = message
