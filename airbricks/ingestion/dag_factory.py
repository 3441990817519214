"""Build the ingestion DAG of a source declared in ``dags/sources.yaml``.

Each source has its own DAG file, ``dags/ingest_<source>.py``, calling :func:`build_source_dag`: the DAG
processor parses (and re-parses) each file on its own, so a file defines one DAG and one bad source cannot
break the others. Runs in the DAG processor: reads one YAML file, validates the source, builds the DAG.
No network, no database, no heavy imports (operators import requests/boto3 only when they execute).
"""

from __future__ import annotations

import ast
import datetime
import os
import pathlib
import textwrap
from typing import TYPE_CHECKING

from airbricks.ingestion.config import SourceConfig, SourceConfigError, declared_source_names, load_source
from airbricks.partitions import raw_bucket

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


def _selected_source(file: pathlib.Path) -> str | None:
    """The source a DAG file selects: the name in its ``build_source_dag(<yaml>, "<name>")`` call, if any."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except (SyntaxError, UnicodeDecodeError):
        return None  # the DAG-integrity test reports the file's import error itself
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = (
            func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        )
        if called != "build_source_dag":
            continue
        args = [*node.args[1:2], *(k.value for k in node.keywords if k.arg == "name")]
        if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
            return args[0].value
    return None


def source_file_mismatches(dags_dir: str | os.PathLike[str], config_name: str = "sources.yaml") -> list[str]:
    """Sources of ``<dags_dir>/sources.yaml`` without their DAG file, and DAG files without their source.

    Each source needs ``<dags_dir>/ingest_<source>.py`` calling ``build_source_dag(..., "<source>")``; a
    source without it simply never appears in Airflow (no error anywhere), so the DAG-integrity test runs
    this check. Reads the file's source names only (field errors are the DAG files' own import errors).

    :param dags_dir: the DAG folder holding ``sources.yaml`` and the ``ingest_<source>.py`` files.
    :param config_name: the sources file's name inside ``dags_dir``.
    :returns: one message per problem, naming the source and the file; empty when all match.
    """
    folder = pathlib.Path(dags_dir)
    config = folder / config_name
    try:
        declared = declared_source_names(config)
    except SourceConfigError as exc:
        return [str(exc)]
    selecting: dict[str, list[pathlib.Path]] = {}
    for file in sorted(folder.glob("*.py")):
        name = _selected_source(file)
        if name is not None:
            selecting.setdefault(name, []).append(file)
    problems = []
    misnamed: set[str] = set()  # declared sources whose ingest_<source>.py selects another source
    for name, files in selecting.items():
        for file in files:
            owner = file.stem.removeprefix("ingest_")
            if file.name == f"ingest_{name}.py" and name in declared:
                continue
            if file.stem.startswith("ingest_") and owner in declared:
                misnamed.add(owner)
                problems.append(
                    f"{config}: source '{owner}': {file} selects source '{name}' instead; change the source "
                    f'name in its last line to "{owner}"'
                )
            elif name not in declared:
                problems.append(
                    f"{file} selects source '{name}', which {config} does not declare (declared: "
                    f"{', '.join(declared) or 'none'}): add '{name}' under 'sources:' or delete {file}"
                )
            else:
                problems.append(
                    f"{file} selects source '{name}' of {config}: name the file ingest_{name}.py, after its "
                    f"DAG id ingest_{name}"
                )
    for name in declared:
        expected = folder / f"ingest_{name}.py"
        if name not in misnamed and expected not in selecting.get(name, []):
            problems.append(
                f"{config}: source '{name}' has no DAG file {expected}: copy "
                f"{folder / 'ingest_github.py'} to {expected} and change the source name in its last line "
                f'to "{name}"'
            )
    return problems
