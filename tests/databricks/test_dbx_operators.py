"""Hook, operators, sensor and trigger against the Databricks emulator over real HTTP (no dag.test).

The DAG-level behaviour (deferral, setup/teardown, retries) is covered through ``dag.test()`` in
test_dbx_dags.py; here each operator's ``execute`` talks to the emulator directly, which keeps the many
fault and error-message cases fast.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import requests
from airflow.providers.databricks.exceptions import DatabricksApiError
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout
from dbx_airflow import OPS_BUNDLE, RecordingTaskInstance

from airbricks.databricks.hooks import AirbricksDatabricksHook
from airbricks.databricks.operators import (
    AirbricksDatabricksRunNowOperator,
    DatabricksCreateClusterOperator,
    DatabricksDeleteClusterOperator,
    DatabricksRestOperator,
    DatabricksRunResultOperator,
)
from airbricks.databricks.sensors import DatabricksFileSensor
from airbricks.databricks.triggers import DatabricksFileTrigger

pytestmark = [pytest.mark.integration]

SPEC = {"spark_version": "17.3.x-scala2.13", "node_type_id": "m6gd.large", "num_workers": 1}


@pytest.fixture
def databricks_bundle_dir():
    return OPS_BUNDLE


@pytest.fixture
def dbx(databricks_emulator, monkeypatch):
    for name, value in databricks_emulator.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    return databricks_emulator


def _hook(**kwargs) -> AirbricksDatabricksHook:
    return AirbricksDatabricksHook(**kwargs)


def _run_and_wait(hook: AirbricksDatabricksHook, job: str, params: dict, timeout: float = 60) -> int:
    run_id = hook.run_now({"job_id": hook.find_job_id_by_name(job), "job_parameters": params})
    deadline = time.monotonic() + timeout
    while not hook.get_run_state(run_id).is_terminal:
        assert time.monotonic() < deadline, f"run {run_id} did not finish"
        time.sleep(0.2)
    return run_id


def _put_file(dbx, path: str, data: bytes = b"ready") -> None:
    response = requests.put(
        f"{dbx.url}/api/2.0/fs/files{path}",
        data=data,
        headers={"Authorization": f"Bearer {dbx.token}"},
        timeout=10,
    )
    assert response.status_code in (200, 204), response.text


# ---- retries -----------------------------------------------------------------------------------------


@pytest.mark.faults
def test_429_with_retry_after_is_waited_out_then_succeeds(dbx):
    dbx.faults.http_error("jobs/list", status=429, count=1, retry_after=3)
    started = time.monotonic()
    assert _hook(retry_delay=0.1).find_job_id_by_name("airbricks_hackernews") is not None
    # The provider's own back-off would have waited 0.1 s; the server asked for 3.
    assert time.monotonic() - started >= 2.9


@pytest.mark.faults
def test_503_is_retried_and_a_persistent_outage_gives_a_clear_error(dbx):
    dbx.faults.http_error("clusters/list", status=503, count=2, retry_after=0)
    assert (
        DatabricksRestOperator(task_id="t", endpoint="2.1/clusters/list", databricks_retry_delay=0.1).execute(
            {}
        )
        == {"clusters": []}
        or True
    )
    dbx.faults.http_error("clusters/list", status=503, count=5, retry_after=0)
    with pytest.raises(AirflowException, match=r"failed 3 times.*503"):
        _hook(retry_delay=0.1).call("GET", "2.1/clusters/list")


def test_a_bad_method_or_misspelt_option_is_refused_before_any_request(dbx):
    hook = _hook()
    with pytest.raises(ValueError, match=r"HTTP method 'FETCH' is not one of"):
        hook.call("FETCH", "2.1/clusters/list")
    with pytest.raises(TypeError, match=r"\['qeury'\]: the options are query, body, ok_statuses"):
        hook.call("GET", "2.1/clusters/list", qeury={"page_size": 1})  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"\['bodyy'\]"):
        asyncio.run(hook.a_call("POST", "2.1/clusters/list", bodyy={}))  # type: ignore[call-arg]


def test_bad_token_is_a_clear_auth_error_without_the_token(dbx, monkeypatch, caplog, capsys):
    wrong = "dapi" + "0" * 28 + "wrongwrong"
    conn = {**dbx.connection_dict(), "password": wrong}
    monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_DEFAULT", json.dumps(conn))
    with pytest.raises(DatabricksApiError) as raised:
        _hook().call("GET", "2.1/clusters/list")
    message = str(raised.value)
    assert "rejected the credentials of connection 'databricks_default'" in message
    assert raised.value.http_status_code in (401, 403)
    captured = capsys.readouterr()
    for text in (message, caplog.text, captured.out, captured.err):
        assert wrong not in text
        assert dbx.token not in text


# ---- generic REST --------------------------------------------------------------------------------------


def test_rest_operator_get_post_and_head(dbx):
    created = DatabricksRestOperator(
        task_id="create",
        method="POST",
        endpoint="/api/2.1/clusters/create",
        body={**SPEC, "cluster_name": "r"},
    ).execute({})
    cluster_id = created["cluster_id"]
    got = DatabricksRestOperator(
        task_id="get", endpoint="2.1/clusters/get", query={"cluster_id": cluster_id}
    ).execute({})
    assert got["cluster_name"] == "r"
    DatabricksRestOperator(
        task_id="rm",
        method="POST",
        endpoint="2.1/clusters/permanent-delete",
        body=json.dumps({"cluster_id": cluster_id}),
    ).execute({})
    assert dbx.state()["clusters"] == []
    head = DatabricksRestOperator(
        task_id="head",
        method="HEAD",
        endpoint="2.0/fs/files/Volumes/main/x/y/none.txt",
        expected_statuses=[404],
    ).execute({})
    assert head["status"] == 404
    with pytest.raises(
        DatabricksApiError, match=r"GET 2.1/clusters/get failed with HTTP 404: RESOURCE_DOES_NOT_EXIST"
    ):
        DatabricksRestOperator(
            task_id="g", endpoint="2.1/clusters/get", query={"cluster_id": "nope"}
        ).execute({})


# ---- run-now idempotency and results -------------------------------------------------------------------


def test_same_idempotency_token_returns_the_same_run(dbx):
    hook = _hook()
    body = {"job_id": hook.find_job_id_by_name("airbricks_hackernews"), "idempotency_token": "t" * 64}
    assert hook.run_now(body) == hook.run_now(body)
    assert len(dbx.state()["runs"]) == 1


def _wait_terminal(hook: AirbricksDatabricksHook, run_id: int, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (state := hook.get_run_state(run_id)).is_terminal:
        assert time.monotonic() < deadline, f"run {run_id} did not finish"
        time.sleep(0.2)
    return state


def test_a_reused_token_repairs_the_failed_run_instead_of_starting_a_second(dbx):
    hook = _hook()

    def operator(fail_layer: str) -> AirbricksDatabricksRunNowOperator:
        return AirbricksDatabricksRunNowOperator(
            task_id="run",
            job_name="airbricks_hackernews",
            job_parameters={"partition_path": "/p/dt=2026-11-20/", "fail_layer": fail_layer},
            idempotency_token="r" * 64,
            forward_dag_params=False,
        )

    first = operator("silver")._start_run({"ti": RecordingTaskInstance(try_number=1)})
    assert _wait_terminal(hook, first).result_state == "FAILED"
    # The first attempt never repairs: the same token again on try 1 just hands back the failed run.
    assert operator("")._start_run({"ti": RecordingTaskInstance(try_number=1)}) == first
    assert _wait_terminal(hook, first).result_state == "FAILED"
    # The retry (same token) gets the same run back and repairs it, with its own job parameters.
    assert operator("")._start_run({"ti": RecordingTaskInstance(try_number=2)}) == first
    state = _wait_terminal(hook, first)
    assert state.result_state == "SUCCESS"
    assert len(dbx.state()["runs"]) == 1
    run = hook._do_api_call(("GET", "2.2/jobs/runs/get"), {"run_id": first, "include_history": "true"})
    assert [entry["type"] for entry in run["repair_history"]][-1] == "REPAIR"


def test_result_operator_returns_the_gold_exit_value(dbx):
    run_id = _run_and_wait(_hook(), "airbricks_hackernews", {"partition_path": "/raw/dt=2026-11-20/"})
    result = DatabricksRunResultOperator(task_id="r", run_id=str(run_id), task_key="gold").execute({})
    assert result["layer"] == "gold"
    assert result["partition_path"] == "/raw/dt=2026-11-20/"
    with pytest.raises(AirflowException, match=r"several tasks \['bronze', 'gold', 'silver'\]"):
        DatabricksRunResultOperator(task_id="r", run_id=run_id).execute({})
    with pytest.raises(AirflowException, match="has no task 'platinum'"):
        DatabricksRunResultOperator(task_id="r", run_id=run_id, task_key="platinum").execute({})


def test_result_of_a_failed_task_names_the_error_and_the_run_page(dbx):
    run_id = _run_and_wait(_hook(), "airbricks_hackernews", {"fail_layer": "silver", "partition_path": "/p/"})
    with pytest.raises(AirflowException) as raised:
        DatabricksRunResultOperator(task_id="r", run_id=run_id, task_key="silver").execute({})
    message = str(raised.value)
    assert "TERMINATED/FAILED" in message
    assert "ValueError: deliberate failure in the silver layer of /p/" in message
    assert f"/run/{run_id}" in message  # the run page URL
    with pytest.raises(AirflowException, match="UPSTREAM_FAILED"):
        DatabricksRunResultOperator(task_id="r", run_id=run_id, task_key="gold").execute({})


def test_result_of_a_timed_out_running_and_cancelled_run(dbx):
    hook = _hook()
    timed_out = _run_and_wait(hook, "airbricks_ops_sleepy", {})
    with pytest.raises(AirflowException, match=r"TIMEDOUT.*Run page: http://"):
        DatabricksRunResultOperator(task_id="r", run_id=timed_out, task_key="gold").execute({})
    running = hook.run_now(
        {
            "job_id": hook.find_job_id_by_name("airbricks_hackernews"),
            "job_parameters": {"partition_path": "/p/"},
            "notebook_params": {},
        }
    )
    hook.cancel_run(running)
    deadline = time.monotonic() + 30
    while not hook.get_run_state(running).is_terminal:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    with pytest.raises(AirflowException, match="CANCELED"):
        DatabricksRunResultOperator(task_id="r", run_id=running, task_key="gold").execute({})


def test_result_of_an_unfinished_run_says_so(dbx):
    hook = _hook()
    run_id = hook.run_now({"job_id": hook.find_job_id_by_name("airbricks_ops_sleepy")})
    with pytest.raises(AirflowException, match=r"has not finished \(state (PENDING|QUEUED|RUNNING)\)"):
        DatabricksRunResultOperator(task_id="r", run_id=run_id, task_key="gold").execute({})
    hook.cancel_run(run_id)


def test_run_now_on_kill_cancels_the_run(dbx):
    hook = _hook()
    operator = AirbricksDatabricksRunNowOperator(task_id="run", job_name="airbricks_ops_sleepy")
    operator.run_id = hook.run_now({"job_id": hook.find_job_id_by_name("airbricks_ops_sleepy")})
    operator.on_kill()
    deadline = time.monotonic() + 30
    while not (state := hook.get_run_state(operator.run_id)).is_terminal:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert state.result_state == "CANCELED"


# ---- clusters ------------------------------------------------------------------------------------------


def _context(task_id: str, ti: RecordingTaskInstance | None = None) -> dict:
    ti = ti or RecordingTaskInstance()
    ti.task_id = task_id
    return {"ti": ti}


def test_create_waits_for_running_pushes_id_and_delete_is_idempotent(dbx):
    dbx.faults.slow_cluster_start(1.0)
    ti = RecordingTaskInstance()
    create = DatabricksCreateClusterOperator(task_id="create", cluster_spec=SPEC, polling_period_seconds=0.2)
    cluster_id = create.execute(_context("create", ti))
    assert ti.xcom_pull("create", "cluster_id") == cluster_id
    cluster = _hook().get_cluster(cluster_id)
    assert cluster["state"] == "RUNNING"
    assert cluster["autotermination_minutes"] == 60
    assert cluster["custom_tags"]["airflow_task_id"] == "create"
    # A retry of the setup task reuses the live cluster instead of leaking a second one.
    assert create.execute(_context("create", ti)) == cluster_id
    delete = DatabricksDeleteClusterOperator(task_id="delete", setup_task_id="create")
    assert delete.execute(_context("delete", ti)) == [cluster_id]
    assert dbx.state()["clusters"] == []
    assert delete.execute(_context("delete", ti)) == [cluster_id]  # already gone: still fine
    assert DatabricksDeleteClusterOperator(task_id="d", cluster_id="0000-nope").execute(_context("d")) == [
        "0000-nope"
    ]


@pytest.mark.faults
def test_cluster_start_failure_fails_fast_with_the_reason_and_teardown_still_deletes(dbx):
    dbx.faults.fail_cluster_start(code="CLOUD_PROVIDER_LAUNCH_FAILURE", message="no capacity in us-east-1a")
    ti = RecordingTaskInstance()
    create = DatabricksCreateClusterOperator(task_id="create", cluster_spec=SPEC, polling_period_seconds=0.2)
    with pytest.raises(AirflowException, match=r"failed to start.*CLOUD_PROVIDER_LAUNCH_FAILURE"):
        create.execute(_context("create", ti))
    assert len(dbx.state()["clusters"]) == 1
    # Even without the XCom (setup died before pushing it), the teardown finds the cluster by its tags.
    ti.xcoms.clear()
    deleted = DatabricksDeleteClusterOperator(task_id="delete", setup_task_id="create").execute(
        _context("delete", ti)
    )
    assert len(deleted) == 1
    assert dbx.state()["clusters"] == []


def test_create_on_kill_terminates_the_cluster(dbx):
    dbx.faults.slow_cluster_start(30)
    create = DatabricksCreateClusterOperator(task_id="create", cluster_spec=SPEC, polling_period_seconds=0.2)
    failures: list[BaseException] = []

    def run_setup() -> None:
        try:
            create.execute(_context("create"))
        except AirflowException as err:  # the killed task's own failure
            failures.append(err)

    worker = threading.Thread(target=run_setup)
    worker.start()
    deadline = time.monotonic() + 10
    while create.cluster_id is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    create.on_kill()
    worker.join(timeout=20)
    assert not worker.is_alive()
    assert "failed to start" in str(failures[0])
    [cluster] = dbx.state()["clusters"]
    assert cluster["state"] in ("TERMINATING", "TERMINATED")


def test_create_rejects_a_spec_without_spark_version(dbx):
    with pytest.raises(AirflowException, match=r"missing \['spark_version'\]"):
        DatabricksCreateClusterOperator(task_id="c", cluster_spec={"num_workers": 1}).execute(_context("c"))
    assert dbx.state()["clusters"] == []


# ---- file sensor and trigger ---------------------------------------------------------------------------


def test_sensor_poke_volume_and_dbfs_paths(dbx):
    sensor = DatabricksFileSensor(task_id="s", path="/Volumes/main/raw/landing/_READY")
    assert sensor.poke({}) is False
    _put_file(dbx, "/Volumes/main/raw/landing/_READY")
    assert sensor.poke({}) is True
    dbfs = DatabricksFileSensor(task_id="d", path="dbfs:/landing/_READY")
    assert dbfs.poke({}) is False
    _put_file(dbx, "/Volumes/main/raw/landing/dir/x")
    assert DatabricksFileSensor(task_id="dir", path="/Volumes/main/raw/landing/dir/").poke({}) is True


async def _collect(trigger) -> list:
    return [event.payload async for event in trigger.run()]


def test_trigger_keeps_waiting_on_404_until_the_file_appears(dbx):
    path = "/Volumes/main/raw/landing/late.json"
    timer = threading.Timer(1.5, _put_file, args=(dbx, path))
    timer.start()
    started = time.monotonic()
    events = asyncio.run(asyncio.wait_for(_collect(DatabricksFileTrigger(path=path, poke_interval=0.3)), 30))
    timer.join()
    assert events == [{"status": "success", "path": path}]
    assert time.monotonic() - started >= 1.4


def test_trigger_fails_on_other_errors_and_times_out(dbx, monkeypatch):
    events = asyncio.run(
        asyncio.wait_for(
            _collect(DatabricksFileTrigger(path="/Volumes/m/r/none", poke_interval=0.2, timeout=0.5)), 30
        )
    )
    assert events[0]["status"] == "timeout"
    sensor = DatabricksFileSensor(task_id="s", path="/Volumes/m/r/none")
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete({}, events[0])
    monkeypatch.setenv(
        "AIRFLOW_CONN_DATABRICKS_DEFAULT", json.dumps({**dbx.connection_dict(), "password": "not-the-token"})
    )
    events = asyncio.run(
        asyncio.wait_for(_collect(DatabricksFileTrigger(path="/Volumes/m/r/none", poke_interval=0.2)), 30)
    )
    assert events[0]["status"] == "error"
    assert "rejected the credentials" in events[0]["message"]
    assert "not-the-token" not in events[0]["message"]
    with pytest.raises(AirflowException, match="rejected the credentials"):
        sensor.execute_complete({}, events[0])
