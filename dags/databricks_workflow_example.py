"""Example Airflow DAG: a multi-task Databricks workflow on ONE shared job cluster (cost-efficient default).

``DatabricksWorkflowTaskGroup`` turns the notebook tasks inside it into one Databricks job (created or
reset as ``<dag_id>.<group_id>``) with a single ``job_clusters`` entry: the cluster starts once, runs
bronze -> silver -> gold, and terminates with the run, while Airflow still shows each task. A retry or a
clear of a failed layer repairs the Databricks run: only the failed tasks and their downstream re-run.
For pipelines deployed as bundle jobs, ``databricks_processing`` (run-now by job name) is the same idea.
Trigger it by hand with conf ``partition_key`` / ``output_root`` (unset keys take the defaults below).
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.providers.databricks.operators.databricks_workflow import DatabricksWorkflowTaskGroup
from airflow.sdk import DAG, chain

from airbricks.databricks.processing import manual_partition_parameters
from airbricks.databricks.workflow import AirbricksDatabricksNotebookOperator
from airbricks.notifications import on_task_failure

NOTEBOOK = os.environ.get(
    "AIRBRICKS_DATABRICKS_NOTEBOOK", "/Workspace/Shared/.bundle/airbricks/prod/files/src/medallion_layer"
)
CONN_ID = os.environ.get("AIRBRICKS_DATABRICKS_CONN_ID", "databricks_default")
# Manual inputs are run conf keys (the conf overrides the task's params), each with a default. Not DAG-level
# Params: Airflow JSON-schema-checks every Param once per task each time this file is parsed (#32434).
# The raw partition: run conf partition_key (default 2026-11-20) of hackernews/stories, as the job parameters
# of airbricks.partitions.RawPartition (partition_path, partition_key, partition_date, ...).
PARTITION_MACROS, PARTITION_PARAMETERS = manual_partition_parameters("hackernews", "stories", "2026-11-20")
OUTPUT_ROOT = "{{ params.get('output_root', 's3://airbricks-lake/hackernews/stories/') }}"
JOB_CLUSTER = {
    "job_cluster_key": "medallion",
    "new_cluster": {
        "spark_version": "17.3.x-scala2.13",
        "node_type_id": "m6gd.large",
        "num_workers": 1,
        "data_security_mode": "SINGLE_USER",
    },
}

with (
    DAG(
        dag_id="databricks_workflow_example",
        description="bronze -> silver -> gold as one Databricks workflow on one shared job cluster",
        schedule=None,
        catchup=False,
        tags=["databricks", "example"],
        default_args={
            "owner": "data-platform",
            "retries": 2,
            "retry_delay": timedelta(minutes=1),
            "on_failure_callback": on_task_failure,
        },
        user_defined_macros=PARTITION_MACROS,
        doc_md=__doc__,
    ) as dag,
    DatabricksWorkflowTaskGroup(
        group_id="medallion",
        databricks_conn_id=CONN_ID,
        job_clusters=[JOB_CLUSTER],
        # Per-run values as job parameters: extra_job_params is rendered by the launch task and merged
        # into the job it creates/resets, and Databricks hands job parameters to every notebook task.
        extra_job_params={
            "parameters": [
                *({"name": name, "default": value} for name, value in PARTITION_PARAMETERS.items()),
                {"name": "output_root", "default": OUTPUT_ROOT},
            ]
        },
    ) as workflow,
):
    layers = [
        # The provider's DatabricksNotebookOperator, plus repair: a retry or a clear of a failed layer
        # repairs the run (only failed Databricks tasks and their downstream re-run), see docs/DATABRICKS.md.
        AirbricksDatabricksNotebookOperator(
            task_id=layer,
            databricks_conn_id=CONN_ID,
            notebook_path=NOTEBOOK,
            source="WORKSPACE",
            job_cluster_key="medallion",
            notebook_params={"layer": layer},
            polling_period_seconds=2,
        )
        for layer in ("bronze", "silver", "gold")
    ]
    chain(*layers)
