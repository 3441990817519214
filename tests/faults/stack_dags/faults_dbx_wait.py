"""A deferrable Databricks run per DAG run, on the emulator: the triggerer holds every wait.

The job (``stack_bundle``, serverless) runs until the file ``params.release_file`` exists, so the test
decides how long the task stays deferred.
"""

from __future__ import annotations

import datetime

from airflow.sdk import dag

from airbricks.databricks.operators import AirbricksDatabricksRunNowOperator


@dag(
    dag_id="faults_dbx_wait",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    max_active_runs=128,
    params={"release_file": ""},
    default_args={"retries": 2, "retry_delay": datetime.timedelta(seconds=1)},
    tags=["faults"],
)
def faults_dbx_wait() -> None:
    AirbricksDatabricksRunNowOperator(
        task_id="wait_on_databricks",
        job_name="airbricks_faults_wait",
        job_parameters={"release_file": "{{ params.release_file }}"},
        deferrable=True,
        polling_period_seconds=5,
    )


faults_dbx_wait()
