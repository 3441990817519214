"""Example Airflow DAG: the all-purpose cluster pattern, managed entirely from Airflow.

    wait_for_ready_file (deferrable sensor on a Volume file)
      -> create_cluster (setup: create, wait RUNNING, push cluster_id)
      -> bronze -> silver -> gold (runs/submit on that cluster, one small run each)
      -> get_gold_result (dbutils.notebook.exit value of the gold run)
      -> delete_cluster (teardown: terminate + permanent-delete, runs whatever happened above)

Prefer one shared *job* cluster (see databricks_workflow_example and the bundle jobs) for scheduled
pipelines: it is cheaper and dies with the run. This pattern fits interactive-style work that needs one
warm cluster for several short runs. Trigger it by hand with conf ``partition_key`` (and optionally
``ready_file``, ``output_root``, ``fail_layer``); unset keys take the defaults below.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, chain

from airbricks.databricks.examples import (
    OUTPUT_ROOT,
    cluster_spec,
    example_dag_arguments,
    manual_partition,
    notebook_path,
)
from airbricks.databricks.operators import (
    AirbricksDatabricksSubmitRunOperator,
    DatabricksCreateClusterOperator,
    DatabricksDeleteClusterOperator,
    DatabricksRunResultOperator,
)
from airbricks.databricks.processing import databricks_conn_id
from airbricks.databricks.sensors import DatabricksFileSensor

NOTEBOOK = notebook_path()
CONN_ID = databricks_conn_id()
PARTITION_MACROS, PARTITION_PARAMETERS = manual_partition()
CLUSTER_ID = "{{ ti.xcom_pull(task_ids='create_cluster', key='cluster_id') }}"
# More run conf keys (see airbricks.databricks.examples): the file to wait for, the layer to make fail.
READY_FILE = "{{ params.get('ready_file', '/Volumes/main/airbricks/landing/hackernews/_READY') }}"
FAIL_LAYER = "{{ params.get('fail_layer', '') }}"  # test hook: make this layer's notebook fail

with DAG(
    dag_id="databricks_cluster_example",
    description="Sensor -> all-purpose cluster (setup) -> several runs/submit -> result -> delete (teardown)",
    schedule=None,
    **example_dag_arguments(),
    user_defined_macros=PARTITION_MACROS,
    doc_md=__doc__,
) as dag:
    wait = DatabricksFileSensor(
        task_id="wait_for_ready_file",
        path=READY_FILE,
        databricks_conn_id=CONN_ID,
        deferrable=True,
        poke_interval=5,
        timeout=timedelta(hours=1),
    )
    create = DatabricksCreateClusterOperator(
        task_id="create_cluster",
        databricks_conn_id=CONN_ID,
        cluster_spec=cluster_spec(),
        cluster_name="airbricks-{{ dag.dag_id }}",
        autotermination_minutes=30,
        polling_period_seconds=2,
    )
    layers = [
        AirbricksDatabricksSubmitRunOperator(
            task_id=layer,
            databricks_conn_id=CONN_ID,
            run_name=f"airbricks {layer} on the all-purpose cluster",
            existing_cluster_id=CLUSTER_ID,
            notebook_task={
                "notebook_path": NOTEBOOK,
                "base_parameters": {
                    "dataset": "hackernews_stories",
                    "layer": layer,
                    **PARTITION_PARAMETERS,
                    "output_root": OUTPUT_ROOT,
                    "fail_layer": FAIL_LAYER,
                },
            },
            polling_period_seconds=2,
        )
        for layer in ("bronze", "silver", "gold")
    ]
    result = DatabricksRunResultOperator(
        task_id="get_gold_result",
        databricks_conn_id=CONN_ID,
        run_id="{{ ti.xcom_pull(task_ids='gold', key='run_id') }}",
    )
    delete = DatabricksDeleteClusterOperator(
        task_id="delete_cluster",
        databricks_conn_id=CONN_ID,
        cluster_id=CLUSTER_ID,
        setup_task_id="create_cluster",
    )
    chain(wait, create, *layers, result, delete.as_teardown(setups=create))
