"""What the example DAGs ``dags/databricks_cluster_example.py`` and ``databricks_workflow_example.py`` share.

The bundle's notebook they run, the one small cluster they start, their manual inputs and the DAG settings.
Functions, not module constants, where a value comes from the environment: a DAG file reads it each time it
is parsed.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airbricks.databricks.processing import manual_partition_parameters

NOTEBOOK_ENV = "AIRBRICKS_DATABRICKS_NOTEBOOK"
# Workspace path of the bundle's notebook (prod deployment; no extension, as Databricks stores notebooks).
DEFAULT_NOTEBOOK = "/Workspace/Shared/.bundle/airbricks/prod/files/src/medallion_layer"


# Manual inputs are run conf keys (the conf overrides the task's params), each with a default. Not DAG-level
# Params: Airflow JSON-schema-checks every Param once per task each time a DAG file is parsed (#32434).
OUTPUT_ROOT = "{{ params.get('output_root', 's3://airbricks-lake/hackernews/stories/') }}"


def notebook_path() -> str:
    """``$AIRBRICKS_DATABRICKS_NOTEBOOK`` or the prod bundle's ``medallion_layer`` notebook."""
    return os.environ.get(NOTEBOOK_ENV, DEFAULT_NOTEBOOK)


def manual_partition() -> tuple[dict[str, Any], dict[str, str]]:
    """The raw partition an example run processes: run conf ``partition_key`` (default 2026-11-20) of
    hackernews/stories, as the job parameters of :class:`airbricks.partitions.RawPartition`
    (``partition_path``, ``partition_key``, ``partition_date``, ...).

    :returns: ``(user_defined_macros, {job parameter name: template})``; pass the macros to the DAG.
    """
    return manual_partition_parameters("hackernews", "stories", "2026-11-20")


def cluster_spec() -> dict[str, Any]:
    """One small single-user cluster (a new dict each call): the all-purpose cluster of one example, the job
    cluster of the other."""
    return {
        "spark_version": "17.3.x-scala2.13",
        "node_type_id": "m6gd.large",
        "num_workers": 1,
        "data_security_mode": "SINGLE_USER",
    }


def example_dag_arguments() -> dict[str, Any]:
    """``DAG(...)`` arguments of both examples (each states ``schedule=None`` itself: triggered by hand):
    no catchup, tagged, tasks retried, failures notified."""
    from airbricks.notifications import on_task_failure

    return {
        "catchup": False,
        "tags": ["databricks", "example"],
        "default_args": {
            "owner": "data-platform",
            "retries": 2,
            "retry_delay": timedelta(minutes=1),
            "on_failure_callback": on_task_failure,
        },
    }
