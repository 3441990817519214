"""The repo's Databricks DAGs through ``dag.test()`` (real Airflow task execution, triggers run inline)
against the Databricks emulator loaded with the fast stand-in bundle (tests/databricks/ops_bundle)."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from dbx_airflow import (
    DAGS,
    MANUAL_CONF,
    OPS_BUNDLE,
    PARTITION,
    load_dag,
    task_states,
    try_numbers,
    use_emulator,
    xcom_values,
)

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


@pytest.fixture
def databricks_bundle_dir():
    return OPS_BUNDLE


@pytest.fixture
def dbx(databricks_emulator, airflow_db, monkeypatch, tmp_path):
    return use_emulator(databricks_emulator, monkeypatch, tmp_path)


def _all_purpose_clusters(dbx) -> list[dict]:
    return [c for c in dbx.state()["clusters"] if c["cluster_source"] not in ("JOB",)]


@pytest.fixture
def failures(monkeypatch) -> list[str]:
    """The messages of every task failure: the DAGs' ``on_failure_callback`` is swapped for a recorder
    (before the DAG file is parsed, so ``default_args`` picks it up)."""
    messages: list[str] = []

    def record(context) -> None:
        messages.append(f"{context['ti'].task_id}: {context.get('exception')}")

    monkeypatch.setattr("airbricks.notifications.on_task_failure", record)
    return messages


# ---- processing DAG ----------------------------------------------------------------------------------


def test_processing_dag_declares_a_freshness_deadline():
    import runpy

    from airflow.sdk.definitions.deadline import DeadlineAlert

    from airbricks.databricks.processing import FRESHNESS_SLA

    namespace = runpy.run_path(str(DAGS / "databricks_hackernews_stories.py"))
    dag = next(v for v in namespace.values() if getattr(v, "dag_id", None) == "databricks_hackernews_stories")
    alerts = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert alerts
    assert all(isinstance(alert, DeadlineAlert) for alert in alerts)
    assert alerts[0].interval == FRESHNESS_SLA


def _run_task(monkeypatch, poll: str | None):
    import runpy

    from airbricks.databricks.processing import POLL_SECONDS_ENV

    if poll is None:
        monkeypatch.delenv(POLL_SECONDS_ENV, raising=False)
    else:
        monkeypatch.setenv(POLL_SECONDS_ENV, poll)
    namespace = runpy.run_path(str(DAGS / "databricks_hackernews_stories.py"))
    dag = next(v for v in namespace.values() if getattr(v, "dag_id", None) == "databricks_hackernews_stories")
    return dag.get_task("run_medallion_job")


def test_processing_dag_polls_every_15_s_unless_the_deployment_says_otherwise(monkeypatch):
    assert _run_task(monkeypatch, None).partial_kwargs["polling_period_seconds"] == 15.0
    assert _run_task(monkeypatch, "1").partial_kwargs["polling_period_seconds"] == 1.0
    with pytest.raises(ValueError, match="AIRBRICKS_DATABRICKS_POLL_SECONDS must be a number"):
        _run_task(monkeypatch, "soon")
    with pytest.raises(ValueError, match="must be positive"):
        _run_task(monkeypatch, "0")


def test_processing_dag_runs_the_job_by_name_deferred_and_returns_the_gold_result(dbx):
    dag = load_dag("databricks_hackernews_stories.py", "databricks_hackernews_stories")
    dag_run = dag.test(run_conf=MANUAL_CONF)

    assert task_states(dag_run) == {
        "raw_partitions": "success",
        "run_medallion_job[0]": "success",
        "get_gold_result[0]": "success",
        "notify": "success",
    }
    [gold] = xcom_values(dag_run, "get_gold_result")
    assert gold["layer"] == "gold"
    assert gold["partition_path"] == PARTITION
    assert gold["output_root"] == "s3://test-lake/hackernews/stories/"
    assert gold["partition_key"] == "2026-11-20"
    assert gold["partition_folder"] == "dt=2026-11-20/"
    assert gold["interval_start"] == "2026-11-20T00:00:00+00:00"
    [notified] = xcom_values(dag_run, "notify")
    assert notified[0].startswith("gold ready: dataset=hackernews/stories")
    [run] = dbx.state()["runs"]
    assert xcom_values(dag_run, "run_medallion_job") == [run["run_id"]]


@pytest.mark.faults
def test_a_retried_run_task_attaches_to_the_same_databricks_run(dbx):
    # The first attempt starts the run, then every runs/get of that attempt fails (503 x retry_limit):
    # the task fails, Airflow retries it, and the idempotency token hands back the same run.
    dbx.faults.http_error("jobs/runs/get", status=503, count=3, retry_after=0)
    dag = load_dag("databricks_hackernews_stories.py", "databricks_hackernews_stories", retries=1)
    dag_run = dag.test(run_conf=MANUAL_CONF)

    assert task_states(dag_run)["get_gold_result[0]"] == "success"
    assert try_numbers(dag_run)["run_medallion_job"] == 2
    assert len(dbx.state()["runs"]) == 1


@pytest.mark.faults
def test_a_failed_databricks_run_fails_the_task_with_the_error_and_run_page(dbx, failures):
    dbx.faults.fail_runs(count=1, kind="FAILED", message="Injected: executor lost")
    dag = load_dag("databricks_hackernews_stories.py", "databricks_hackernews_stories", retries=0)
    dag_run = dag.test(run_conf=MANUAL_CONF)

    states = task_states(dag_run)
    assert states["run_medallion_job[0]"] == "failed"
    # A mapped task whose upstream failed is never expanded: it fails as one unmapped instance.
    assert states["get_gold_result"] == "upstream_failed"
    [message] = failures
    assert message.startswith("run_medallion_job: Databricks run ")
    assert "ended TERMINATED/FAILED" in message
    assert "bronze: Injected: executor lost" in message
    assert "Run page: http://127.0.0.1" in message


def test_a_wrong_token_fails_clearly_and_is_never_logged(dbx, failures, caplog, monkeypatch):
    wrong = "dapi" + "5" * 32
    monkeypatch.setenv(
        "AIRFLOW_CONN_DATABRICKS_DEFAULT", json.dumps({**dbx.connection_dict(), "password": wrong})
    )
    dag = load_dag("databricks_hackernews_stories.py", "databricks_hackernews_stories", retries=0)
    dag_run = dag.test(run_conf=MANUAL_CONF)

    assert task_states(dag_run)["run_medallion_job[0]"] == "failed"
    [message] = failures
    assert "rejected the credentials of connection 'databricks_default'" in message
    assert "HTTP 403" in message or "HTTP 401" in message
    logs = message + caplog.text
    assert wrong not in logs
    assert dbx.token not in logs
    assert dbx.state()["runs"] == []


# ---- all-purpose cluster example -------------------------------------------------------------------


def _put_file_later(dbx, path: str, delay: float) -> threading.Timer:
    def put() -> None:
        requests.put(
            f"{dbx.url}/api/2.0/fs/files{path}",
            data=b"ready",
            headers={"Authorization": f"Bearer {dbx.token}"},
            timeout=10,
        ).raise_for_status()

    timer = threading.Timer(delay, put)
    timer.start()
    return timer


def test_cluster_example_sensor_setup_submit_runs_result_and_teardown(dbx):
    ready = "/Volumes/main/airbricks/landing/hackernews/_READY"
    timer = _put_file_later(dbx, ready, 3.0)  # the deferred sensor keeps waiting on 404 until then
    dag = load_dag("databricks_cluster_example.py", "databricks_cluster_example")
    dag_run = dag.test(run_conf={"ready_file": ready, **MANUAL_CONF})
    timer.join()

    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    [gold] = xcom_values(dag_run, "get_gold_result")
    assert gold["layer"] == "gold"
    assert gold["partition_path"] == PARTITION
    [cluster_id] = xcom_values(dag_run, "create_cluster")
    runs = dbx.state()["runs"]
    assert len(runs) == 3
    assert xcom_values(dag_run, "delete_cluster") == [[cluster_id]]
    assert _all_purpose_clusters(dbx) == []


@pytest.mark.faults
def test_cluster_example_teardown_deletes_the_cluster_when_a_run_fails(dbx, failures):
    ready = "/Volumes/main/airbricks/landing/hackernews/_READY"
    _put_file_later(dbx, ready, 0).join()
    dag = load_dag("databricks_cluster_example.py", "databricks_cluster_example", retries=0)
    conf = {"ready_file": ready, **MANUAL_CONF, "fail_layer": "silver"}
    dag_run = dag.test(run_conf=conf)

    states = task_states(dag_run)
    assert states["bronze"] == "success"
    assert states["silver"] == "failed"
    assert states["gold"] == "upstream_failed"
    assert states["delete_cluster"] == "success"
    assert _all_purpose_clusters(dbx) == []
    [message] = failures
    assert message.startswith("silver: ")
    assert "ValueError: deliberate failure in the silver layer" in message
    assert "Run page: http://127.0.0.1" in message


@pytest.mark.faults
def test_cluster_example_teardown_deletes_a_cluster_that_failed_to_start(dbx):
    ready = "/Volumes/main/airbricks/landing/hackernews/_READY"
    _put_file_later(dbx, ready, 0).join()
    dbx.faults.fail_cluster_start(code="CLOUD_PROVIDER_LAUNCH_FAILURE")
    dag = load_dag("databricks_cluster_example.py", "databricks_cluster_example", retries=0)
    dag_run = dag.test(run_conf={"ready_file": ready, **MANUAL_CONF})

    states = task_states(dag_run)
    assert states["create_cluster"] == "failed"
    assert states["bronze"] == "upstream_failed"
    assert states["delete_cluster"] == "success"
    assert _all_purpose_clusters(dbx) == []


# ---- workflow on one shared job cluster ------------------------------------------------------------


def test_workflow_example_runs_all_tasks_as_one_job_on_one_job_cluster(dbx):
    dag = load_dag("databricks_workflow_example.py", "databricks_workflow_example", retries=0)
    other_day = PARTITION.replace("dt=2026-11-20", "dt=2026-11-18")  # not the DAG's default param
    dag_run = dag.test(run_conf={"partition_key": "2026-11-18"})

    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    client = dbx.client()
    [job] = [
        j for j in client.jobs.list(expand_tasks=True) if j.settings.name.startswith("databricks_workflow")
    ]
    assert job.settings.name == "databricks_workflow_example.medallion"
    assert [c.job_cluster_key for c in job.settings.job_clusters] == ["medallion"]
    assert {t.job_cluster_key for t in job.settings.tasks} == {"medallion"}
    [run] = [r for r in dbx.state()["runs"] if r.get("job_id") == job.job_id]
    tasks = client.jobs.get_run(run["run_id"]).tasks
    outputs = [json.loads(client.jobs.get_run_output(t.run_id).notebook_output.result) for t in tasks]
    assert {o["layer"] for o in outputs} == {"bronze", "silver", "gold"}
    assert {o["partition_path"] for o in outputs} == {other_day}
