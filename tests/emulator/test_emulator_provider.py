"""Contract: the official Airflow Databricks provider's hook works against the emulator unchanged.

The connection is the one the fixture documents (``schema="http"``, ``port``, token in ``password``);
the provider builds ``http://127.0.0.1:PORT/api/2.x/...`` from it (``_endpoint_url``).
"""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def hook(databricks_emulator, monkeypatch):
    from airflow.providers.databricks.hooks.databricks import DatabricksHook

    for name, value in databricks_emulator.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    return DatabricksHook(retry_limit=3, retry_delay=0.1)


def test_hook_builds_http_url_from_connection(hook, databricks_emulator):
    assert hook._endpoint_url("api/2.2/jobs/list") == f"{databricks_emulator.url}/api/2.2/jobs/list"


def test_hook_finds_bundle_job_by_name_and_runs_it(hook, databricks_emulator):
    job_id = hook.find_job_id_by_name("contract-greet")
    assert job_id == databricks_emulator.job_id("greet")
    assert hook.find_job_id_by_name("no-such-job") is None

    run_id = hook.run_now({"job_id": job_id, "job_parameters": {"who": "provider"}})
    state = _wait_terminal(hook, run_id)
    assert state.is_successful, state
    assert hook.get_run_page_url(run_id).startswith(databricks_emulator.url)
    assert hook.get_job_id(run_id) == job_id

    tasks = hook.get_run_tasks(run_id)
    assert [t["task_key"] for t in tasks] == ["greet", "count"]
    greet = next(t for t in tasks if t["task_key"] == "greet")
    assert hook.get_run_output(greet["run_id"])["notebook_output"]["result"] == "hello-local, provider"


def test_hook_failed_run_exposes_task_error(hook, databricks_emulator):
    run_id = hook.run_now({"job_id": databricks_emulator.job_id("fail")})
    state = _wait_terminal(hook, run_id)
    assert state.result_state == "FAILED"
    assert not state.is_successful
    tasks = {t["task_key"]: t for t in hook.get_run_tasks(run_id)}
    assert tasks["after_boom"]["state"]["result_state"] == "UPSTREAM_FAILED"
    output = hook.get_run_output(tasks["boom"]["run_id"])
    assert output["error"].startswith("ZeroDivisionError: deliberate failure")
    assert "boom.py" in output["error_trace"]


def test_hook_submit_cancel_and_repair(hook, databricks_emulator, tmp_path):
    bundle = databricks_emulator.workspace.bundle.root
    run_id = hook.submit_run(
        {
            "run_name": "provider-submit",
            "tasks": [
                {
                    "task_key": "sleep",
                    "spark_python_task": {"python_file": str(bundle / "src/sleep.py"), "parameters": ["60"]},
                }
            ],
        }
    )
    _wait_for(lambda: hook.get_run_state(run_id).life_cycle_state == "RUNNING")
    hook.cancel_run(run_id)
    state = _wait_terminal(hook, run_id)
    assert state.result_state == "CANCELED"

    repair_id = hook.repair_run({"run_id": run_id, "rerun_all_failed_tasks": True})
    assert isinstance(repair_id, int)
    _wait_for(lambda: hook.get_run_state(run_id).life_cycle_state == "RUNNING")
    hook.cancel_run(run_id)
    assert _wait_terminal(hook, run_id).result_state == "CANCELED"
    assert hook.get_latest_repair_id(run_id) == repair_id


def test_hook_cluster_calls(hook, databricks_emulator):
    sdk = databricks_emulator.client()
    cluster = sdk.clusters.create_and_wait(
        spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=0
    )
    assert hook.get_cluster_state(cluster.cluster_id).state == "RUNNING"
    hook.restart_cluster({"cluster_id": cluster.cluster_id})
    assert hook.get_cluster_state(cluster.cluster_id).state == "RESTARTING"
    _wait_for(lambda: hook.get_cluster_state(cluster.cluster_id).is_running)
    hook.terminate_cluster({"cluster_id": cluster.cluster_id})
    assert hook.get_cluster_state(cluster.cluster_id).is_terminal  # TERMINATING already counts
    _wait_for(lambda: hook.get_cluster_state(cluster.cluster_id).state == "TERMINATED")
    hook.start_cluster({"cluster_id": cluster.cluster_id})
    _wait_for(lambda: hook.get_cluster_state(cluster.cluster_id).is_running)
    hook.terminate_cluster({"cluster_id": cluster.cluster_id})
    databricks_emulator.wait_idle()


def test_hook_async_path_used_by_deferrable_operators(hook, databricks_emulator):
    run_id = hook.run_now({"job_id": databricks_emulator.job_id("greet")})

    async def poll():
        async with hook:  # what DatabricksExecutionTrigger does (opens the aiohttp session)
            while True:
                state = await hook.a_get_run_state(run_id)
                if state.is_terminal:
                    run = await hook.a_get_run(run_id)
                    greet = next(t for t in run["tasks"] if t["task_key"] == "greet")
                    return state, await hook.a_get_run_output(greet["run_id"])
                await asyncio.sleep(0.2)

    state, output = asyncio.run(poll())
    assert state.is_successful
    assert output["notebook_output"]["result"] == "hello-local, world"


def test_hook_retries_429_and_503_then_succeeds(hook, databricks_emulator):
    databricks_emulator.faults.http_error("jobs/list", status=429, count=1, retry_after=0)
    databricks_emulator.faults.http_error("jobs/list", status=503, count=1, retry_after=0)
    assert hook.find_job_id_by_name("contract-greet") == databricks_emulator.job_id("greet")
    assert databricks_emulator.faults.snapshot()["http"] == []


def test_hook_reports_bad_token(databricks_emulator, monkeypatch):
    import json

    from airflow.providers.databricks.exceptions import DatabricksApiError
    from airflow.providers.databricks.hooks.databricks import DatabricksHook

    conn = {**databricks_emulator.connection_dict(), "password": "not-the-token"}
    monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_BAD", json.dumps(conn))
    with pytest.raises(DatabricksApiError, match="403"):
        DatabricksHook("databricks_bad", retry_limit=1).list_jobs()


def _wait_for(predicate, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _wait_terminal(hook, run_id: int, timeout: float = 60.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = hook.get_run_state(run_id)
        if state.is_terminal:
            return state
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} not terminal after {timeout}s: {state}")


def test_operator_style_stringified_legacy_submit(hook, databricks_emulator):
    """DatabricksSubmitRunOperator stringifies numbers and may send the legacy single-task shape."""
    from airflow.providers.databricks.utils.databricks import normalise_json_content

    bundle = databricks_emulator.workspace.bundle.root
    payload = normalise_json_content(
        {
            "run_name": "legacy",
            "timeout_seconds": 120,
            "new_cluster": {
                "spark_version": "15.4.x-scala2.12",
                "node_type_id": "i3.xlarge",
                "num_workers": 1,
            },
            "notebook_task": {
                "notebook_path": str(bundle / "src/greet.py"),
                "base_parameters": {"who": "legacy"},
            },
        }
    )
    assert payload["new_cluster"]["num_workers"] == "1"
    run_id = hook.submit_run(payload)
    assert _wait_terminal(hook, run_id).is_successful
    assert hook.get_run_output(run_id)["notebook_output"]["result"] == "hi, legacy"
    databricks_emulator.wait_idle()


def test_runs_get_accepts_a_task_run_id(hook, databricks_emulator):
    """DatabricksWorkflowTaskGroup's task operators poll each task's own run id with runs/get."""
    run_id = hook.run_now({"job_id": databricks_emulator.job_id("fail")})
    _wait_terminal(hook, run_id)
    boom = next(t for t in hook.get_run_tasks(run_id) if t["task_key"] == "boom")
    task_run = hook.get_run(boom["run_id"])
    assert task_run["run_id"] == boom["run_id"]
    assert task_run["parent_run_id"] == run_id
    assert task_run["state"]["result_state"] == "FAILED"
    assert task_run["run_page_url"].endswith(f"/run/{boom['run_id']}")


def test_a_trigger_session_keeps_its_connection_between_polls(databricks_emulator, monkeypatch):
    """Polls 6 s apart (past uvicorn's default keep-alive of 5 s) reuse one connection: the emulator keeps
    idle connections as a workspace's front end does, so a poll does not pay a connect."""
    import aiohttp

    from airbricks.databricks.hooks import AirbricksDatabricksHook

    for name, value in databricks_emulator.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    hook = AirbricksDatabricksHook(retry_limit=3, retry_delay=0.1)
    connections: list[str] = []

    async def created(session, context, params):
        connections.append("created")

    async def reused(session, context, params):
        connections.append("reused")

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(created)
    trace.on_connection_reuseconn.append(reused)
    trace.freeze()

    async def poll_twice() -> None:
        async with hook:  # the session a trigger polls through
            hook._session.trace_configs.append(trace)
            for poll in range(2):
                if poll:
                    await asyncio.sleep(6)
                assert "clusters" in await hook._a_do_api_call(("GET", "2.1/clusters/list"))

    asyncio.run(poll_twice())
    assert connections == ["created", "reused"]
