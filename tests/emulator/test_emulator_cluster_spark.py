"""Clusters are real Spark processes: one Spark Connect server per running cluster, shared by its tasks."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import psutil
import pytest
from databricks.sdk.service import compute, jobs

from airbricks.emulator.clusters import ClusterManager
from airbricks.emulator.faults import Faults
from airbricks.emulator.spark_drivers import SparkDrivers

pytestmark = [pytest.mark.integration]
SPARK_VERSION = "15.4.x-scala2.12"


def _until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _alive(pgid: int) -> bool:
    """Whether any process of the group (a Spark server's watcher and its JVM) still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _spark_processes(state_dir: pathlib.Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(state_dir) in cmdline and "SparkConnectServer" in cmdline:
            found.append(proc)
    return found


def _identity_tasks(src, cluster: dict) -> list[jobs.Task]:
    notebook = jobs.NotebookTask(notebook_path=str(src / "spark_identity"))
    return [
        jobs.Task(task_key="first", notebook_task=notebook, **cluster),
        jobs.Task(
            task_key="second",
            notebook_task=notebook,
            depends_on=[jobs.TaskDependency(task_key="first")],
            **cluster,
        ),
    ]


def _outputs(sdk, run) -> dict[str, dict]:
    return {
        t.task_key: json.loads(sdk.jobs.get_run_output(t.run_id).notebook_output.result) for t in run.tasks
    }


def test_tasks_of_a_job_cluster_share_its_spark_connect_server(sdk, databricks_emulator):
    src = databricks_emulator.workspace.bundle.root / "src"
    job = sdk.jobs.create(
        name="spark-identity",
        job_clusters=[
            jobs.JobCluster(
                job_cluster_key="shared",
                new_cluster=compute.ClusterSpec(spark_version=SPARK_VERSION, node_type_id="i3.xlarge"),
            )
        ],
        tasks=_identity_tasks(src, {"job_cluster_key": "shared"}),
    )
    waiter = sdk.jobs.run_now(job.job_id)
    _until(lambda: databricks_emulator.state()["clusters"])
    cluster_id = databricks_emulator.state()["clusters"][0]["cluster_id"]
    _until(lambda: databricks_emulator.workspace.clusters.driver_pid(cluster_id) is not None)
    pid = databricks_emulator.workspace.clusters.driver_pid(cluster_id)
    run = waiter.result()
    outputs = _outputs(sdk, run)
    assert {o["session"] for o in outputs.values()} == {"pyspark.sql.connect.session"}
    assert outputs["first"]["app_id"] == outputs["second"]["app_id"]  # one JVM for the whole run
    assert outputs["first"]["total"] == 45
    # JOB_FINISHED terminates the job cluster, and its Spark process with it.
    _until(lambda: not _alive(pid), timeout=15)
    assert databricks_emulator.workspace.clusters.driver_pid(cluster_id) is None


def test_an_all_purpose_cluster_keeps_its_spark_across_runs(sdk, databricks_emulator):
    src = databricks_emulator.workspace.bundle.root / "src"
    cluster = sdk.clusters.create_and_wait(spark_version=SPARK_VERSION, node_type_id="i3.xlarge")
    tasks = _identity_tasks(src, {"existing_cluster_id": cluster.cluster_id})[:1]
    first = _outputs(sdk, sdk.jobs.submit(run_name="a", tasks=tasks).result())["first"]
    second = _outputs(sdk, sdk.jobs.submit(run_name="b", tasks=tasks).result())["first"]
    assert first["app_id"] == second["app_id"]
    pid = databricks_emulator.workspace.clusters.driver_pid(cluster.cluster_id)
    sdk.clusters.delete_and_wait(cluster.cluster_id)
    _until(lambda: not _alive(pid), timeout=15)


def test_a_spark_server_that_cannot_start_terminates_its_cluster(tmp_path):
    drivers = SparkDrivers(tmp_path, driver_memory="not-a-size")
    clusters = ClusterManager(Faults(), start_seconds=0.05, drivers=drivers)
    try:
        cluster = clusters.create({"spark_version": SPARK_VERSION})
        _until(lambda: clusters.state_of(cluster.cluster_id) == "TERMINATED")
        reason = clusters.reason_of(cluster.cluster_id)
        assert reason["code"] == "SPARK_STARTUP_FAILURE"
        assert "Spark driver exited with code" in reason["parameters"]["databricks_error_message"]
    finally:
        clusters.close()


def test_a_spare_server_started_ahead_serves_the_next_cluster(tmp_path):
    drivers = SparkDrivers(tmp_path, spares=1)
    try:
        drivers.prestart()
        _until(lambda: drivers._spares and drivers._spares[0].ready, timeout=120)
        spare = drivers._spares[0]
        taken = drivers.start("cluster-1")
        assert taken is spare
        assert taken.cluster_id == "cluster-1"
        assert (tmp_path / "cluster-1").resolve() == spare.directory
        _until(lambda: drivers._spares and drivers._spares[0] is not spare)  # a new spare behind it
        pids = [spare.process.pid, drivers._spares[0].process.pid]
        assert spare.warmed.wait(180)  # its warm-up query ran against it before the cluster took it
        assert b"Error" not in (spare.directory / "warm-up.txt").read_bytes()
    finally:
        drivers.stop_all()
    _until(lambda: not any(_alive(p) for p in pids), timeout=15)


def test_without_refill_a_taken_spare_is_not_replaced(tmp_path):
    drivers = SparkDrivers(tmp_path, spares=1, warm_up=False, refill_spares=False)
    try:
        drivers.prestart()
        _until(lambda: drivers._spares and drivers._spares[0].ready, timeout=120)
        spare = drivers._spares[0]
        assert drivers.start("cluster-1") is spare
        time.sleep(1)  # a refill would have launched its server by now (prestart starts a thread at once)
        assert drivers._spares == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster-1", "driver-1"]
        pid = spare.process.pid
    finally:
        drivers.stop_all()
    _until(lambda: not _alive(pid), timeout=15)


def test_no_spark_process_outlives_a_killed_emulator(tmp_path):
    state = tmp_path / "state"
    emulator = subprocess.Popen(
        [sys.executable, "-m", "airbricks.local.emulator_cli", "--port", "0", "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _until(lambda: _spark_processes(state), timeout=60)  # the spare of --spare-spark-drivers 1
        jvms = _spark_processes(state)
    finally:
        emulator.kill()  # SIGKILL: no clean-up code of the emulator runs
        emulator.wait()
    _until(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in jvms), timeout=15)
