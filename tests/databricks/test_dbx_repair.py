"""Repair of failed multi-task Databricks runs from Airflow 3 (docs/DATABRICKS.md, "Repairing failed tasks").

Real Airflow task execution (``dag.test()``, and a clear of the failed task on the same DAG run) against the
Databricks emulator with the fast stand-in bundle: silver fails once (an injected task fault), Airflow
re-runs the task, and the Databricks run is repaired: bronze ran once, silver twice, gold once, and each
of the original run and the repair had its own job cluster.
"""

from __future__ import annotations

from collections import Counter

import pytest
from dbx_airflow import (
    MANUAL_CONF,
    OPS_BUNDLE,
    clear_and_resume,
    load_dag,
    task_states,
    try_numbers,
    use_emulator,
)

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.faults]


@pytest.fixture
def databricks_bundle_dir():
    return OPS_BUNDLE


@pytest.fixture
def dbx(databricks_emulator, airflow_db, monkeypatch, tmp_path):
    return use_emulator(databricks_emulator, monkeypatch, tmp_path)


def _executions(dbx, run_id: int, names: dict[str, str] | None = None) -> tuple[Counter, list[dict]]:
    """How many times each task really ran in the run (attempts that got a cluster), and the run."""
    run = dbx.client().api_client.do(
        "GET", "/api/2.2/jobs/runs/get", query={"run_id": run_id, "include_history": "true"}
    )
    names = names or {}
    ran = Counter(names.get(t["task_key"], t["task_key"]) for t in run["tasks"] if t.get("cluster_instance"))
    return ran, run


def _clusters_per_attempt_group(run: dict) -> list[set[str]]:
    """The job clusters used by the original run and by each repair (task_run_ids of repair_history)."""
    cluster_of = {t["run_id"]: t.get("cluster_instance", {}).get("cluster_id") for t in run["tasks"]}
    return [
        {cluster_of[i] for i in item["task_run_ids"] if cluster_of.get(i)} for item in run["repair_history"]
    ]


def _assert_repaired_once(dbx, run_id: int, names: dict[str, str] | None = None) -> None:
    ran, run = _executions(dbx, run_id, names)
    assert ran == Counter({"bronze": 1, "silver": 2, "gold": 1}), ran
    assert [item["type"] for item in run["repair_history"]] == ["ORIGINAL", "REPAIR"]
    assert run["state"]["result_state"] == "SUCCESS"
    original, repair = _clusters_per_attempt_group(run)
    assert len(original) == 1  # one job cluster for the original run...
    assert len(repair) == 1  # ...and one new one for the repair
    assert original != repair


# ---- the bundle job (processing DAG: run-now by name, deferrable) ------------------------------------


def test_processing_retry_repairs_only_failed_silver_and_downstream_gold(dbx):
    dbx.faults.fail_runs(count=1, task_key="silver", message="Injected: silver failed")
    dag = load_dag("databricks_hackernews_stories.py", "databricks_hackernews_stories", retries=1)
    dag_run = dag.test(run_conf=MANUAL_CONF)

    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    assert try_numbers(dag_run)["run_medallion_job"] == 2
    [run] = dbx.state()["runs"]  # repaired in place: no second run
    _assert_repaired_once(dbx, run["run_id"])


def test_processing_clear_of_the_failed_task_repairs_the_run(dbx):
    dbx.faults.fail_runs(count=1, task_key="silver", message="Injected: silver failed")
    dag = load_dag("databricks_hackernews_stories.py", "databricks_hackernews_stories", retries=0)
    dag_run = dag.test(run_conf=MANUAL_CONF)
    assert task_states(dag_run)["run_medallion_job[0]"] == "failed"

    # Clearing bumps the DAG run's clear number, so the idempotency token changes: the run is found again
    # through the task state the first try recorded, and repaired rather than started afresh.
    dag_run = clear_and_resume(dag, dag_run, ["run_medallion_job", "get_gold_result", "notify"])

    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    [run] = dbx.state()["runs"]
    _assert_repaired_once(dbx, run["run_id"])


def test_processing_clear_of_a_successful_task_processes_again_in_a_fresh_run(dbx):
    dag = load_dag("databricks_hackernews_stories.py", "databricks_hackernews_stories", retries=0)
    dag_run = dag.test(run_conf=MANUAL_CONF)
    assert set(task_states(dag_run).values()) == {"success"}

    dag_run = clear_and_resume(dag, dag_run, ["run_medallion_job", "get_gold_result", "notify"])

    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    runs = dbx.state()["runs"]
    assert len(runs) == 2


# ---- DatabricksWorkflowTaskGroup (databricks_workflow_example) --------------------------------------


def _workflow(retries: int):
    dag = load_dag("databricks_workflow_example.py", "databricks_workflow_example", retries=retries)
    names = {
        dag.get_task(f"medallion.{layer}").databricks_task_key: layer
        for layer in ("bronze", "silver", "gold")
    }
    return dag, names


def _workflow_run_id(dbx) -> int:
    state = dbx.state()
    [job_id] = [j["job_id"] for j in state["jobs"] if j["name"] == "databricks_workflow_example.medallion"]
    [run] = [r for r in state["runs"] if r["job_id"] == job_id]  # one run: the launch task ran once
    return run["run_id"]


def test_workflow_retry_of_the_failed_task_repairs_the_run(dbx):
    dag, names = _workflow(retries=1)
    silver_key = next(key for key, layer in names.items() if layer == "silver")
    dbx.faults.fail_runs(count=1, task_key=silver_key, message="Injected: silver failed")
    dag_run = dag.test(run_conf=MANUAL_CONF)

    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    tries = try_numbers(dag_run)
    assert (tries["medallion.launch"], tries["medallion.silver"], tries["medallion.gold"]) == (1, 2, 1)
    _assert_repaired_once(dbx, _workflow_run_id(dbx), names)


def test_workflow_clear_of_the_failed_task_repairs_the_run(dbx):
    dag, names = _workflow(retries=0)
    silver_key = next(key for key, layer in names.items() if layer == "silver")
    dbx.faults.fail_runs(count=1, task_key=silver_key, message="Injected: silver failed")
    dag_run = dag.test(run_conf=MANUAL_CONF)
    states = task_states(dag_run)
    assert (states["medallion.silver"], states["medallion.gold"]) == ("failed", "upstream_failed")

    dag_run = clear_and_resume(dag, dag_run, ["medallion.silver", "medallion.gold"])

    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    _assert_repaired_once(dbx, _workflow_run_id(dbx), names)
