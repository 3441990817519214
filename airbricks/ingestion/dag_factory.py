"""Build the ingestion DAG of a source declared in ``dags/sources.yaml``.

Each source has its own DAG file, ``dags/ingest_<source>.py``, calling :func:`build_source_dag`: the DAG
processor parses (and re-parses) each file on its own, so a file defines one DAG and one bad source cannot
break the others. Runs in the DAG processor: reads one YAML file, validates the source, builds the DAG.
No network, no database, no heavy imports (operators import requests/boto3 only when they execute).
"""

from __future__ import annotations

import datetime
import os
import textwrap
from typing import TYPE_CHECKING

from airbricks.ingestion.assets import raw_bucket
from airbricks.ingestion.config import SourceConfig, SourceConfigError, load_source

if TYPE_CHECKING:
    from airflow.sdk import DAG


def _import_callback(source: str, dotted: str):
    from airflow.sdk.module_loading import import_string

    try:
        callback = import_string(dotted)
    except ImportError as exc:
        raise SourceConfigError(f"source '{source}': field 'task.on_failure_callback': {exc}") from exc
    if not callable(callback):
        raise SourceConfigError(
            f"source '{source}': field 'task.on_failure_callback': {dotted} is not callable"
        )
    return callback


def _utc(day: datetime.date) -> datetime.datetime:
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)


def build_dag(source: SourceConfig, bucket: str | None = None) -> DAG:
    """The DAG ``ingest_<source>``: one :class:`HttpToS3RawOperator` task per dataset."""
    from airflow.sdk import DAG, CronDataIntervalTimetable

    from airbricks.ingestion.operators import HttpToS3RawOperator
    from airbricks.notifications import notify_dag_failure, notify_dag_recovery, notify_task_recovery

    bucket = bucket or raw_bucket()
    try:
        timetable = CronDataIntervalTimetable(source.schedule, timezone="UTC")
        timetable.validate()
    except Exception as exc:  # airflow raises its own error types for bad cron strings
        raise SourceConfigError(f"source '{source.name}': field 'schedule': {exc}") from exc
    task = source.task
    default_args = {
        "owner": source.owner,
        "retries": task.retries,
        "retry_delay": datetime.timedelta(seconds=task.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": datetime.timedelta(seconds=task.max_retry_delay_seconds),
        "execution_timeout": datetime.timedelta(seconds=task.execution_timeout_seconds),
        "on_failure_callback": _import_callback(source.name, task.on_failure_callback),
        "on_success_callback": notify_task_recovery,
    }
    datasets = ", ".join(f"`{name}`" for name in source.datasets)
    doc = textwrap.dedent(
        f"""
        ### Ingest `{source.name}`
        {source.description}

        Datasets: {datasets}. Each run fetches its data interval from connection `{source.http_conn_id}`
        and publishes `s3://{bucket}/raw/{source.name}/<dataset>/dt=YYYY-MM-DD/` (manifest last).
        Declared in `dags/sources.yaml`; see docs/INGESTION.md.
        """
    )
    with DAG(
        dag_id=source.dag_id,
        description=source.description or None,
        schedule=timetable,
        start_date=_utc(source.start_date),
        end_date=_utc(source.end_date) if source.end_date else None,
        catchup=source.catchup,
        max_active_runs=source.max_active_runs,
        tags=list(source.tags),
        default_args=default_args,
        on_failure_callback=notify_dag_failure,
        on_success_callback=notify_dag_recovery,
        doc_md=doc,
    ) as dag:
        for name, dataset in source.datasets.items():
            HttpToS3RawOperator(
                task_id=f"ingest_{name}",
                source=source.name,
                dataset=name,
                path=dataset.path,
                query_params=dataset.query_params,
                headers=dataset.headers,
                records_path=dataset.records_path,
                required_fields=dataset.required_fields,
                pagination=dataset.pagination.model_dump(),
                auth_type=source.auth.type,
                http_conn_id=source.http_conn_id,
                aws_conn_id=source.aws_conn_id,
                bucket=bucket,
                http_policy=source.http,
            )
    return dag


def build_source_dag(config_path: str | os.PathLike[str], name: str) -> DAG:
    """The DAG ``ingest_<name>`` of the source ``name`` in ``config_path`` (only that source is validated)."""
    return build_dag(load_source(config_path, name))
