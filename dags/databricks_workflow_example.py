"""Example Airflow DAG: a multi-task Databricks workflow on ONE shared job cluster (cost-efficient default).

``DatabricksWorkflowTaskGroup`` turns the notebook tasks inside it into one Databricks job (created or
reset as ``<dag_id>.<group_id>``) with a single ``job_clusters`` entry: the cluster starts once, runs
bronze -> silver -> gold, and terminates with the run, while Airflow still shows each task. A retry or a
clear of a failed layer repairs the Databricks run: only the failed tasks and their downstream re-run.
For pipelines deployed as bundle jobs, ``databricks_processing`` (run-now by job name) is the same idea.
Trigger it by hand with conf ``partition_key`` / ``output_root`` (unset keys take the defaults below).
"""

from __future__ import annotations

from airflow.providers.databricks.operators.databricks_workflow import DatabricksWorkflowTaskGroup
from airflow.sdk import DAG, chain

from airbricks.databricks.examples import (
    OUTPUT_ROOT,
    cluster_spec,
    example_dag_arguments,
    manual_partition,
    notebook_path,
)
from airbricks.databricks.processing import databricks_conn_id
from airbricks.databricks.workflow import AirbricksDatabricksNotebookOperator

NOTEBOOK = notebook_path()
CONN_ID = databricks_conn_id()
PARTITION_MACROS, PARTITION_PARAMETERS = manual_partition()
JOB_CLUSTER = {"job_cluster_key": "medallion", "new_cluster": cluster_spec()}

with (
    DAG(
        dag_id="databricks_workflow_example",
        description="bronze -> silver -> gold as one Databricks workflow on one shared job cluster",
        schedule=None,
        **example_dag_arguments(),
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
