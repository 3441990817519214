"""The task runner: one task attempt as a ``taskhost.py`` subprocess on its cluster.

Each attempt runs in its own process group so cancel, timeouts and a lost cluster kill it with everything
it started. Its spec (parameters resolved, ``s3://`` values mapped) is written next to its logs in
``<state-dir>/runs/<run_id>/<task_key>-<attempt>/``.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import subprocess
import sys
import time
from typing import Any

from airbricks.emulator.clusters import ClusterFailed, ClusterManager
from airbricks.emulator.errors import ApiError
from airbricks.emulator.faults import Faults
from airbricks.emulator.runs import Run, RunStore, TaskRun, now_ms
from airbricks.emulator.spark_drivers import SparkDriver, child_env, kill_group, spark_submit_args
from airbricks.emulator.storage import Mirror, StorageMapper
from airbricks.emulator.task_spec import build_task_spec

TASKHOST = str(pathlib.Path(__file__).with_name("taskhost.py"))
LOG_TAIL = 64 * 1024
#: What Hadoop says when Spark is handed an s3:// (s3a://, s3n://) path: local Spark has no S3 connector.
NO_S3_FILESYSTEM = 'No FileSystem for scheme "s3'


def storage_hint(error: str | None, trace: str | None, s3_mapped: bool) -> str | None:
    """``error`` with a hint when Spark met an ``s3://`` path it cannot read (else ``error`` unchanged).

    :param error: the task's error (``get-output``'s ``error``).
    :param trace: its trace, searched too (the Java message may be only there).
    :param s3_mapped: whether this emulator maps ``s3://`` parameters (it has an S3 endpoint).
    """
    if not any(NO_S3_FILESYSTEM in (text or "") for text in (error, trace)):
        return error
    if s3_mapped:
        hint = (
            "the job gave Spark an s3:// path that is not a whole job/task parameter value: only those are "
            "mapped to local paths; pass every storage location as a parameter (docs/EMULATOR.md, "
            "'Local data access')"
        )
    else:
        hint = (
            "this emulator has no S3 endpoint, so s3:// parameters reach Spark unchanged and local Spark has "
            "no S3 filesystem: start it with --s3-endpoint-url URL (e.g. the moto server of the local stack) "
            "or --local-s3 (`make emulator` starts a local S3 unless EMULATOR_S3_ENDPOINT=URL is given)"
        )
    # Right under the error's first line: the Java stack trace that follows is long.
    first, _, rest = (error or "Task failed").partition("\n")
    return f"{first}\nHint: {hint}" + (f"\n{rest}" if rest else "")


class TaskRunner:
    """Runs task attempts for real.

    :param store: the run store (its condition guards every state change).
    :param clusters: where a task's cluster is found, started or lost.
    :param faults: armed cluster losses are taken here.
    :param state_dir: run logs, specs and results go to ``<state_dir>/runs``.
    :param storage: s3:// parameter mapping.
    :param spark_driver_memory: driver memory of a task's ``local[1]`` Spark session.
    """

    def __init__(
        self,
        store: RunStore,
        clusters: ClusterManager,
        faults: Faults,
        state_dir: pathlib.Path,
        storage: StorageMapper,
        spark_driver_memory: str = "512m",
    ):
        self._store = store
        self.clusters = clusters
        self.faults = faults
        self.state_dir = state_dir
        self.storage = storage
        self.spark_driver_memory = spark_driver_memory
        self.bundle_root: pathlib.Path | None = None  # set by the workspace when a bundle is loaded

    def run(self, run: Run, task: TaskRun, injected: Any) -> None:
        """One attempt: its cluster, its spec and S3 mirrors, the process, then the outcome on ``task``."""
        with self._store.cond:
            task.start_time = now_ms()
            task.setup_start = time.monotonic()
            task.life_cycle_state = "PENDING"
        # 1. cluster
        try:
            cluster_id = self._cluster(run, task)
            driver = None
            if cluster_id:
                driver = self.clusters.wait_spark(cluster_id, 600, lambda: run.cancel_requested)
        except ClusterFailed as failed:
            message = cluster_message(failed)
            with self._store.cond:
                if run.cancel_requested:
                    self._store.end_task(
                        task, "TERMINATED", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS")
                    )
                else:
                    self._store.end_task(
                        task, "INTERNAL_ERROR", "FAILED", message, ("CLUSTER_ERROR", "CLOUD_FAILURE")
                    )
            return
        with self._store.cond:
            task.cluster_id = cluster_id
            if run.cancel_requested or run.timed_out:
                self._store.end_task(
                    task,
                    "TERMINATED",
                    "CANCELED" if run.cancel_requested else "TIMEDOUT",
                    "Run canceled",
                    ("USER_CANCELED", "SUCCESS"),
                )
                return
        if injected is not None:
            with self._store.cond:
                task.exec_start = task.exec_end = time.monotonic()
                task.error = injected.message
                task.error_trace = f"InjectedFault: {injected.message}"
                self._store.end_task(
                    task, "TERMINATED", "FAILED", injected.message, ("RUN_EXECUTION_ERROR", "CLIENT_ERROR")
                )
            return
        # 2. parameters and storage mapping
        task_dir = self.state_dir / "runs" / str(run.run_id) / f"{task.task_key}-{task.attempt_number}"
        task_dir.mkdir(parents=True, exist_ok=True)
        mirrors: dict[str, Mirror] = {}
        try:
            spec = build_task_spec(
                run,
                task,
                task_dir,
                storage=self.storage,
                mirrors=mirrors,
                workspace_root=self.state_dir / "workspace",
                bundle_root=self.bundle_root,
            )
            if mirrors:
                self.storage.download(mirrors)
        except Exception as exc:
            with self._store.cond:
                task.error = f"{type(exc).__name__}: {exc}"
                task.error_trace = task.error
                self._store.end_task(
                    task,
                    "INTERNAL_ERROR",
                    "FAILED",
                    task.error,
                    ("INVALID_RUN_CONFIGURATION", "CLIENT_ERROR"),
                )
            return
        # 3. the process
        spec_file = task_dir / "spec.json"
        spec_file.write_text(json.dumps(spec))
        stdout_path, stderr_path = task_dir / "stdout.txt", task_dir / "stderr.txt"
        loss = self.faults.take_cluster_loss()
        timeout = task.spec.get("timeout_seconds") or 0
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            with self._store.cond:
                task.life_cycle_state = "RUNNING"
                task.exec_start = time.monotonic()
                task.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                    [sys.executable, TASKHOST, str(spec_file)],
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env=self._env(task_dir, driver),
                    cwd=str(task_dir),
                    start_new_session=True,  # own process group: cancel kills the JVM too
                )
            proc = task.process
            while proc.poll() is None:
                elapsed = time.monotonic() - task.exec_start
                with self._store.cond:
                    if run.cancel_requested and task.kill_reason is None:
                        task.kill_reason = "CANCELED"
                    elif timeout and elapsed > timeout and task.kill_reason is None:
                        task.kill_reason = "TIMEDOUT"
                    elif loss is not None and elapsed > loss.after_seconds and task.kill_reason is None:
                        task.kill_reason = "CLUSTER_LOST"
                        if cluster_id:
                            self.clusters.lose(cluster_id, loss.code, loss.type, loss.message)
                    if task.kill_reason is not None:
                        kill_group(proc)
                        break
                    self._store.cond.wait(0.05)
            proc.wait()
            # An armed loss hits this task even if the process ended before `after_seconds` (a busy machine
            # or a very short task): the fault means "this task's cluster dies", never a silent no-op.
            if loss is not None and task.kill_reason is None:
                with self._store.cond:
                    task.kill_reason = "CLUSTER_LOST"
                    if cluster_id:
                        self.clusters.lose(cluster_id, loss.code, loss.type, loss.message)
        task.exec_end = time.monotonic()
        # 4. outcome
        result_file = pathlib.Path(spec["result_file"])
        result = json.loads(result_file.read_text()) if result_file.exists() else None
        stats = None
        if mirrors:
            try:
                stats = self.storage.upload(mirrors)
            except Exception as exc:
                result = {
                    "ok": False,
                    "error": f"Syncing outputs to S3 failed: {exc}",
                    "error_trace": repr(exc),
                }
        logs = stdout_path.read_bytes()
        with self._store.cond:
            task.process = None
            task.logs = logs[-LOG_TAIL:].decode("utf-8", "replace")
            task.logs_truncated = len(logs) > LOG_TAIL
            if stats:
                task.logs += (
                    f"\n[emulator] synced to S3: {stats['uploaded']} uploaded, {stats['deleted']} deleted\n"
                )
            if task.kill_reason == "CANCELED":
                self._store.end_task(
                    task, "TERMINATED", "CANCELED", "Run canceled by user", ("USER_CANCELED", "SUCCESS")
                )
            elif task.kill_reason == "TIMEDOUT":
                limit = timeout or run.settings.get("timeout_seconds")
                self._store.end_task(
                    task,
                    "TERMINATED",
                    "TIMEDOUT",
                    f"Task timed out after {limit} seconds",
                    ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
                )
            elif task.kill_reason == "CLUSTER_LOST":
                assert loss is not None
                message = (
                    f"Cluster {cluster_id} was terminated during the run. Reason: {loss.code}. {loss.message}"
                )
                task.error = message
                self._store.end_task(
                    task, "INTERNAL_ERROR", "FAILED", message, ("CLUSTER_ERROR", "CLOUD_FAILURE")
                )
            elif result is None:
                tail = stderr_path.read_bytes()[-4000:].decode("utf-8", "replace")
                task.error = f"Task process exited with code {proc.returncode} without a result"
                task.error_trace = tail
                self._store.end_task(
                    task, "TERMINATED", "FAILED", task.error, ("RUN_EXECUTION_ERROR", "CLIENT_ERROR")
                )
            elif result.get("ok"):
                task.exit_value = result.get("exit_value")
                task.task_values = result.get("task_values") or {}
                self._store.end_task(task, "TERMINATED", "SUCCESS", "", ("SUCCESS", "SUCCESS"))
            else:
                task.error_trace = result.get("error_trace")
                task.error = storage_hint(result.get("error"), task.error_trace, self.storage.enabled)
                task.task_values = result.get("task_values") or {}
                self._store.end_task(
                    task,
                    "TERMINATED",
                    "FAILED",
                    "Workload failed, see run output for details",
                    ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
                )
        # A task's own new_cluster lives only as long as the task.
        if task.spec.get("new_cluster") is not None and cluster_id:
            with contextlib.suppress(ApiError):  # permanently deleted meanwhile: nothing to stop
                self.clusters.terminate(
                    cluster_id, {"code": "JOB_FINISHED", "type": "SUCCESS", "parameters": {}}
                )

    def _cluster(self, run: Run, task: TaskRun) -> str | None:
        spec = task.spec
        if spec.get("existing_cluster_id"):
            self.clusters.ensure_started(spec["existing_cluster_id"])
            self.clusters.wait_running(spec["existing_cluster_id"], 3600, lambda: run.cancel_requested)
            return spec["existing_cluster_id"]
        if spec.get("job_cluster_key"):
            cluster_id = run.job_cluster_ids[spec["job_cluster_key"]]
            self.clusters.wait_running(cluster_id, 3600, lambda: run.cancel_requested)
            return cluster_id
        if spec.get("new_cluster") is not None:
            cluster = self.clusters.create(
                {**spec["new_cluster"], "cluster_name": f"job-{run.job_id or 'submit'}-run-{task.run_id}"},
                source="JOB",
            )
            with self._store.lock:
                run.owned_clusters.append(cluster.cluster_id)
            self.clusters.wait_running(cluster.cluster_id, 3600, lambda: run.cancel_requested)
            return cluster.cluster_id
        return None  # serverless: no cluster

    def _env(self, task_dir: pathlib.Path, driver: SparkDriver | None) -> dict[str, str]:
        env = child_env()
        if driver is not None:
            # The cluster's Spark: SparkSession.builder.getOrCreate() connects to its Spark Connect server,
            # as Databricks Connect does, so the job code is the code that runs on Databricks.
            env["SPARK_REMOTE"] = driver.remote
        else:
            # Serverless: a session of its own, started if the task touches Spark.
            env["PYSPARK_SUBMIT_ARGS"] = spark_submit_args(task_dir, self.spark_driver_memory)
        return env


def cluster_message(failed: ClusterFailed) -> str:
    code = failed.reason.get("code")
    return f"Cluster {failed.cluster_id} terminated. Reason: {code}. {failed.message}".strip()
