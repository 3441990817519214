"""The error model on the wire, and fault injection through the Python API and the admin endpoint."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from databricks.sdk.errors import InvalidParameterValue, NotFound, OperationFailed, ResourceConflict
from databricks.sdk.service import jobs

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def api(databricks_emulator):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {databricks_emulator.token}"

    def call(method: str, path: str, **kwargs):
        return session.request(method, f"{databricks_emulator.url}{path}", timeout=10, **kwargs)

    return call


def test_missing_token_is_401_and_wrong_token_is_403(databricks_emulator):
    url = f"{databricks_emulator.url}/api/2.2/jobs/list"
    missing = requests.get(url, timeout=10)
    assert missing.status_code == 401
    assert missing.json()["error_code"] == "UNAUTHENTICATED"
    wrong = requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert wrong.status_code == 403
    assert wrong.json() == {"error_code": "PERMISSION_DENIED", "message": "Invalid access token."}
    basic = requests.get(url, auth=("user", databricks_emulator.token), timeout=10)
    assert basic.status_code == 401


def test_bad_json_is_malformed_request(api):
    response = api(
        "POST", "/api/2.2/jobs/create", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == "MALFORMED_REQUEST"


def test_invalid_parameter_names_the_field(api):
    response = api("POST", "/api/2.2/jobs/create", json={"name": "x", "tasks": [{"task_key": "a"}]})
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "'a'" in body["message"]
    assert "task type" in body["message"]
    response = api("GET", "/api/2.2/jobs/runs/get", params={"run_id": "abc"})
    assert response.status_code == 400
    assert "run_id" in response.json()["message"]


def test_unknown_resources_are_404(api):
    for path, params in [
        ("/api/2.2/jobs/get", {"job_id": 1}),
        ("/api/2.1/jobs/runs/get", {"run_id": 1}),
        ("/api/2.1/clusters/get", {"cluster_id": "nope"}),
        ("/api/2.0/dbfs/get-status", {"path": "/nope"}),
    ]:
        response = api("GET", path, params=params)
        assert response.status_code == 404, path
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert api("GET", "/api/2.2/no/such/endpoint").json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_sdk_maps_errors_to_its_exceptions(sdk):
    with pytest.raises(NotFound):
        sdk.jobs.get_run(123)
    with pytest.raises(InvalidParameterValue, match="spark_version"):
        sdk.clusters.create(spark_version="")


def test_injected_429_carries_retry_after_and_is_consumed(api, databricks_emulator):
    databricks_emulator.faults.http_error("jobs/list", status=429, count=2, retry_after=7)
    for _ in range(2):
        response = api("GET", "/api/2.2/jobs/list")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert api("GET", "/api/2.2/jobs/list").status_code == 200


def test_injected_503_on_every_version_of_an_endpoint(api, databricks_emulator):
    databricks_emulator.faults.http_error("/api/2.1/clusters/list", status=503, count=1)
    response = api("GET", "/api/2.0/clusters/list")
    assert response.status_code == 503
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "Retry-After" in response.headers


def test_sdk_retries_through_429(sdk, databricks_emulator):
    databricks_emulator.faults.http_error("jobs/list", status=429, count=1, retry_after=1)
    started = time.monotonic()
    assert list(sdk.jobs.list(name="contract-greet"))
    assert time.monotonic() - started >= 1  # it honoured Retry-After


def test_admin_endpoint_arms_faults_and_reports_state(api, databricks_emulator):
    response = api(
        "POST", "/_emulator/faults", json={"kind": "http_error", "endpoint": "jobs/get", "status": 503}
    )
    assert response.status_code == 200
    assert response.json()["http"][0]["endpoint"] == "jobs/get"
    assert api("GET", "/api/2.2/jobs/get", params={"job_id": 1}).status_code == 503
    bad = api("POST", "/_emulator/faults", json={"kind": "meteor"})
    assert bad.status_code == 400
    assert "meteor" in bad.json()["message"]
    state = api("GET", "/_emulator/state").json()
    assert set(state) >= {"clusters", "active_clusters", "runs", "active_runs", "jobs", "faults"}
    assert api("DELETE", "/_emulator/faults").status_code == 200
    assert requests.get(f"{databricks_emulator.url}/_emulator/state", timeout=5).status_code == 401


def test_slow_cluster_start(sdk, databricks_emulator):
    databricks_emulator.faults.slow_cluster_start(1.5)
    started = time.monotonic()
    sdk.clusters.create_and_wait(spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=0)
    assert time.monotonic() - started >= 1.5


def test_cluster_start_failure_has_termination_reason(sdk, databricks_emulator):
    databricks_emulator.faults.fail_cluster_start(code="CLOUD_PROVIDER_LAUNCH_FAILURE")
    waiter = sdk.clusters.create(spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=0)
    with pytest.raises(OperationFailed, match="TERMINAT"):
        waiter.result()
    cluster = sdk.clusters.get(waiter.cluster_id)
    _until(lambda: sdk.clusters.get(waiter.cluster_id).state.value == "TERMINATED")
    cluster = sdk.clusters.get(waiter.cluster_id)
    assert cluster.termination_reason.code.value == "CLOUD_PROVIDER_LAUNCH_FAILURE"
    assert cluster.termination_reason.type.value == "CLOUD_FAILURE"


def test_job_cluster_start_failure_is_internal_error(sdk, databricks_emulator):
    databricks_emulator.faults.fail_cluster_start()
    waiter = sdk.jobs.run_now(databricks_emulator.job_id("greet"))
    with pytest.raises(OperationFailed, match="CLOUD_PROVIDER_LAUNCH_FAILURE"):
        waiter.result()
    run = sdk.jobs.get_run(waiter.response.run_id)
    assert run.state.life_cycle_state.value == "INTERNAL_ERROR"
    assert run.status.termination_details.code.value == "CLUSTER_ERROR"
    databricks_emulator.wait_idle()


def test_cluster_lost_mid_run(sdk, databricks_emulator):
    src = databricks_emulator.workspace.bundle.root / "src"
    cluster = sdk.clusters.create_and_wait(
        spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=0
    )
    driver = databricks_emulator.workspace.clusters.spark_driver(cluster.cluster_id)
    assert driver is not None
    assert driver.wait_ready(120)  # the cluster's Spark Connect server is up
    databricks_emulator.faults.lose_cluster(after_seconds=0.5)
    waiter = sdk.jobs.submit(
        run_name="lost",
        tasks=[
            jobs.SubmitTask(
                task_key="sleep",
                existing_cluster_id=cluster.cluster_id,
                spark_python_task=jobs.SparkPythonTask(python_file=str(src / "sleep.py"), parameters=["30"]),
            )
        ],
    )
    with pytest.raises(OperationFailed, match="DRIVER_UNREACHABLE"):
        waiter.result()
    run = sdk.jobs.get_run(waiter.response.run_id)
    assert run.tasks[0].state.result_state.value == "FAILED"
    _until(lambda: sdk.clusters.get(cluster.cluster_id).state.value == "TERMINATED")
    assert sdk.clusters.get(cluster.cluster_id).termination_reason.code.value == "DRIVER_UNREACHABLE"
    # Lost for real: the server's whole process group (watcher and JVM) was SIGKILLed at once.
    _until(lambda: not _group_alive(driver.process.pid), timeout=5)
    assert driver.process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("kind", ["FAILED", "INTERNAL_ERROR"])
def test_forced_run_failure(sdk, databricks_emulator, kind):
    databricks_emulator.faults.fail_runs(kind=kind, message="chaos monkey")
    waiter = sdk.jobs.run_now(databricks_emulator.job_id("greet"))
    if kind == "FAILED":
        run = waiter.result()
        assert run.state.result_state.value == "FAILED"
        first = next(t for t in run.tasks if t.task_key == "greet")
        assert sdk.jobs.get_run_output(first.run_id).error == "chaos monkey"
    else:
        with pytest.raises(OperationFailed, match="chaos monkey"):
            waiter.result()
    # the fault is consumed: the next run succeeds
    assert (
        sdk.jobs.run_now(databricks_emulator.job_id("greet")).result().state.result_state.value == "SUCCESS"
    )


def test_files_conflict_without_overwrite(sdk):
    import io

    sdk.files.upload("/Volumes/c/s/v/x.txt", io.BytesIO(b"1"))
    with pytest.raises(ResourceConflict):
        sdk.files.upload("/Volumes/c/s/v/x.txt", io.BytesIO(b"2"), overwrite=False)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_multipart_upload_is_refused_clearly(api):
    response = api("POST", "/api/2.0/fs/files/Volumes/c/s/v/big.bin", params={"action": "initiate-upload"})
    assert response.status_code == 501
    assert "50 MB" in response.json()["message"]


def test_cluster_start_can_end_in_error_state(sdk, databricks_emulator):
    databricks_emulator.faults.fail_cluster_start(state="ERROR", code="INSTANCE_UNREACHABLE")
    waiter = sdk.clusters.create(spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=0)
    with pytest.raises(OperationFailed, match="ERROR"):
        waiter.result()
    cluster = sdk.clusters.get(waiter.cluster_id)
    assert cluster.state.value == "ERROR"
    assert cluster.termination_reason.code.value == "INSTANCE_UNREACHABLE"
    assert databricks_emulator.state()["active_clusters"] == []
    sdk.clusters.start_and_wait(waiter.cluster_id)  # an ERROR cluster can be started again
    sdk.clusters.delete(waiter.cluster_id)
