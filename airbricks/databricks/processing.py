"""Processing DAGs: when a raw partition lands (ingestion asset event), run the dataset's Databricks job.

One DAG per dataset, ``databricks_<source>_<dataset>``, scheduled on the ingestion asset
``s3://<bucket>/raw/<source>/<dataset>``::

    raw_partitions  ->  run_medallion_job (run-now by job NAME, deferrable, one per event)
                    ->  get_gold_result (dbutils.notebook.exit of the job's "gold" task)
                    ->  notify

Each asset event becomes one Databricks run (dynamic task mapping), so two partitions that landed before
the DAG got to run are both processed, each with its own idempotency token.

Environment (read when the DAG file is parsed, like ``AIRBRICKS_RAW_BUCKET``):

``AIRBRICKS_RAW_BUCKET``                  raw-zone bucket (``airbricks-raw``)
``AIRBRICKS_LAKE_ROOT``                   root of bronze/silver/gold outputs (``s3://airbricks-lake``)
``AIRBRICKS_DATABRICKS_CONN_ID``          Airflow connection of the workspace (``databricks_default``)
``AIRBRICKS_DATABRICKS_JOB_NAME_PREFIX``  prefix of the bundle's job names, e.g. ``"[dev alice] "`` for a
                                          personal dev deployment (empty in prod)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from airbricks.databricks.hooks import DEFAULT_CONN_ID
from airbricks.partitions import JOB_PARAMETER_NAMES, PartitionError, RawPartition, dataset_uri, raw_bucket

log = logging.getLogger(__name__)

LAKE_ROOT_ENV = "AIRBRICKS_LAKE_ROOT"
DEFAULT_LAKE_ROOT = "s3://airbricks-lake"
CONN_ID_ENV = "AIRBRICKS_DATABRICKS_CONN_ID"
JOB_NAME_PREFIX_ENV = "AIRBRICKS_DATABRICKS_JOB_NAME_PREFIX"
POLL_SECONDS_ENV = "AIRBRICKS_DATABRICKS_POLL_SECONDS"
DEFAULT_POLL_SECONDS = 15.0
GOLD_TASK_KEY = "gold"


@dataclass(frozen=True)
class ProcessedDataset:
    """A raw dataset and the bundle job that processes it, as declared in ``sources.yaml``
    (``sources.<source>.datasets.<dataset>.processing.job``)."""

    source: str
    dataset: str
    job_name: str

    @property
    def dag_id(self) -> str:
        return f"databricks_{self.source}_{self.dataset}"


def processed_datasets(config_path: str | os.PathLike[str]) -> tuple[ProcessedDataset, ...]:
    """Every dataset of ``config_path`` (``dags/sources.yaml``) with ``processing`` enabled, in file order."""
    from airbricks.ingestion.config import load_sources

    return tuple(
        ProcessedDataset(source.name, name, dataset.processing.job)
        for source in load_sources(config_path)
        for name, dataset in source.datasets.items()
        if dataset.processing is not None and dataset.processing.enabled
    )


def processed_dataset(config_path: str | os.PathLike[str], source: str, dataset: str) -> ProcessedDataset:
    """The processing of ``source``/``dataset`` in ``config_path``; its DAG file selects it with this.

    Validates only that source (like the ingestion DAG files), and fails naming the dataset when it has no
    enabled ``processing``.
    """
    from airbricks.ingestion.config import SourceConfigError, load_source

    config = load_source(config_path, source)
    if dataset not in config.datasets:
        raise SourceConfigError(
            f"{config_path}: source '{source}' has no dataset '{dataset}' (declared: "
            f"{', '.join(config.datasets)})"
        )
    processing = config.datasets[dataset].processing
    if processing is None or not processing.enabled:
        state = "disabled" if processing is not None else "not declared"
        raise SourceConfigError(
            f"{config_path}: source '{source}': dataset '{dataset}': processing is {state}, so the DAG "
            f"databricks_{source}_{dataset} has nothing to run: set datasets.{dataset}.processing.job (and "
            "enabled: true), or delete the DAG file"
        )
    return ProcessedDataset(source, dataset, processing.job)


def bundle_job_mismatches(datasets: tuple[ProcessedDataset, ...], bundle_jobs: set[str]) -> list[str]:
    """Datasets naming a job the bundle does not define, and bundle jobs no dataset names.

    :param datasets: :func:`processed_datasets` of ``sources.yaml``.
    :param bundle_jobs: the job names the bundle (``databricks/resources/*.yml``) defines.
    :returns: one message per problem, naming the dataset or the job; empty when both sides match.
    """
    problems = [
        f"dataset {spec.source}/{spec.dataset}: processing.job '{spec.job_name}' is not a job of the bundle "
        f"(its jobs: {', '.join(sorted(bundle_jobs)) or 'none'}); add it to databricks/resources/ or fix "
        "the name"
        for spec in datasets
        if spec.job_name not in bundle_jobs
    ]
    named = {spec.job_name for spec in datasets}
    problems += [
        f"bundle job '{job}' is processing.job of no dataset in sources.yaml: name it under the dataset it "
        "processes, or delete it from the bundle"
        for job in sorted(bundle_jobs - named)
    ]
    return problems


# How long after its data interval ends a partition must be in gold (deadline alert + latency SLA metric).
FRESHNESS_SLA = timedelta(hours=6)


def lake_root() -> str:
    """``$AIRBRICKS_LAKE_ROOT`` or ``s3://airbricks-lake``, without a trailing slash."""
    return (os.environ.get(LAKE_ROOT_ENV, "").strip() or DEFAULT_LAKE_ROOT).rstrip("/")


def databricks_conn_id() -> str:
    """``$AIRBRICKS_DATABRICKS_CONN_ID`` or the provider's ``databricks_default``."""
    return os.environ.get(CONN_ID_ENV, "").strip() or DEFAULT_CONN_ID


def poll_seconds() -> float:
    """``$AIRBRICKS_DATABRICKS_POLL_SECONDS`` or 15: how often the triggerer asks Databricks about a run.

    Jobs take minutes on Databricks, so 15 s costs little latency there; the local demo's jobs take seconds.
    """
    raw = os.environ.get(POLL_SECONDS_ENV, "").strip()
    if not raw:
        return DEFAULT_POLL_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{POLL_SECONDS_ENV} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{POLL_SECONDS_ENV} must be positive, got {raw!r}")
    return value


def job_name(base: str) -> str:
    """The deployed job name: the bundle's name with the deployment's prefix (dev mode adds one)."""
    return os.environ.get(JOB_NAME_PREFIX_ENV, "") + base


def _partition_of_event(event: Any, bucket: str, source: str, dataset: str) -> RawPartition:
    extra = dict(getattr(event, "extra", None) or {})
    timestamp = getattr(event, "timestamp", "?")
    where = f"asset event of {dataset_uri(bucket, source, dataset)} (timestamp {timestamp})"
    try:
        partition = RawPartition.from_extra(extra)
        if extra.get("partition"):
            RawPartition.from_uri(str(extra["partition"]), bucket=bucket)  # the bucket this DAG reads
    except PartitionError as exc:
        raise ValueError(f"{where} names no usable raw partition: {exc}") from None
    if (partition.source, partition.dataset) != (source, dataset):
        raise ValueError(f"{where} names a partition of {partition.source}/{partition.dataset}: {extra}")
    return partition


def _partition_of_params(params: dict[str, Any], source: str, dataset: str) -> RawPartition | None:
    key = params.get("partition_key")
    if not key:
        return None
    try:
        return RawPartition.from_key(source, dataset, str(key))
    except PartitionError as exc:
        raise ValueError(f"param partition_key: {exc}") from None


def manual_partition_parameters(
    source: str, dataset: str, default_key: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """Templates of the partition job parameters for a DAG run by hand on one raw partition.

    The run conf's ``partition_key`` (else ``default_key``) selects the partition of ``source``/``dataset``
    in the raw bucket; each template renders one value of :meth:`RawPartition.job_parameters`.

    :returns: ``(user_defined_macros, {job parameter name: template})``; pass the macros to the DAG.
    """

    def raw_partition_parameters(key: str) -> dict[str, str]:
        return RawPartition.from_key(source, dataset, str(key)).job_parameters(raw_bucket())

    key = f"params.get('partition_key', {default_key!r})"
    templates = {name: f"{{{{ raw_partition_parameters({key})[{name!r}] }}}}" for name in JOB_PARAMETER_NAMES}
    return {"raw_partition_parameters": raw_partition_parameters}, templates


def job_parameters_from_events(
    events: Any,
    *,
    bucket: str,
    source: str,
    dataset: str,
    params: dict[str, Any],
    output_root: str,
    partition_key: str | None = None,
) -> list[dict[str, str]]:
    """One ``job_parameters`` dict per raw partition to process, oldest first.

    From the triggering asset events of the dataset's asset; for a manual run without events, from
    ``partition_key`` (``YYYY-MM-DD`` / ``YYYY-MM-DDTHH``) in ``params`` (the task's params, which the run
    conf overrides), or from ``partition_key``, the DAG run's own (a run the scheduler created for one
    partition key, or triggered through the REST API with one). Each partition becomes
    :meth:`RawPartition.job_parameters` plus ``output_root``. Fails, naming what is wrong, when there is
    nothing to process or an event names no partition of this dataset in ``bucket``.
    """
    asset_uri = dataset_uri(bucket, source, dataset)
    found: list[RawPartition] = []
    for asset in events or ():
        if getattr(asset, "uri", None) == asset_uri:
            found.extend(_partition_of_event(event, bucket, source, dataset) for event in events[asset])
    if not found and (manual := _partition_of_params(params, source, dataset)):
        found.append(manual)
    if partition_key:
        # A run of one partition processes exactly that one (its events all name it).
        found = [p for p in found if p.key == partition_key] or [
            _partition_of_params({"partition_key": partition_key}, source, dataset)
        ]
    if not found:
        raise ValueError(
            f"nothing to process: no asset event of {asset_uri} triggered this run and no partition_key "
            "was given in the run conf (trigger with conf {'partition_key': 'YYYY-MM-DD'})"
        )
    # The same partition re-published twice is processed once (the job overwrites its outputs anyway).
    unique = sorted(set(found), key=lambda p: p.start)
    return [{**p.job_parameters(bucket), "output_root": output_root} for p in unique]


def record_pipeline_latencies(pipeline: str, processed: list[dict[str, str]]) -> None:
    """Emit the end-to-end latency of each processed partition: its data interval end → gold ready now."""
    from datetime import datetime

    from airbricks import metrics

    now = datetime.now(UTC)
    for params in processed:
        interval_end = params.get("interval_end")
        if not interval_end:
            continue
        try:
            end = datetime.fromisoformat(interval_end)
        except ValueError:
            log.warning(
                "cannot record latency of %s: interval_end %r is not ISO 8601", pipeline, interval_end
            )
            continue
        metrics.record_pipeline_latency(pipeline, now - end, sla=FRESHNESS_SLA)


def notify_gold_results(dataset: str, results: list[Any]) -> list[str]:
    """Announce each processed partition's gold result: one log line each, also returned (to XCom).

    Alerting on a missing gold result is the freshness deadline's job (``FRESHNESS_SLA``); a failed run
    alerts through the DAG's failure callbacks.
    """
    lines = []
    for result in results:
        fields = result if isinstance(result, dict) else {}
        line = f"gold ready: dataset={dataset} dt={fields.get('dt', '?')} summary={fields.get('summary', {})}"
        log.info("%s", line)
        lines.append(line)
    return lines


def build_processing_dag(config_path: str | os.PathLike[str], source: str, dataset: str) -> Any:
    """The processing DAG of ``source``/``dataset`` as ``config_path`` (``sources.yaml``) declares it (see
    the module docstring)."""
    from airflow.sdk import DAG, PartitionedAssetTimetable, task

    from airbricks.databricks.medallion import MedallionRunNowOperator
    from airbricks.databricks.operators import DatabricksRunResultOperator
    from airbricks.ingestion.assets import raw_asset
    from airbricks.notifications import (
        freshness_deadline,
        notify_dag_failure,
        notify_dag_recovery,
        notify_task_recovery,
        on_task_failure,
    )

    spec = processed_dataset(config_path, source, dataset)
    bucket = raw_bucket()
    asset = raw_asset(bucket, spec.source, spec.dataset)
    output_root = f"{lake_root()}/{spec.source}/{spec.dataset}/"
    conn_id = databricks_conn_id()

    with DAG(
        dag_id=spec.dag_id,
        description=f"Run the Databricks job {spec.job_name} on each new raw partition of {asset.uri}",
        # One run per partition key of the ingestion asset's events (identity mapping: ingestion's key is
        # the processing key), so each run shows and processes exactly its partition (docs/PARTITIONS.md).
        schedule=PartitionedAssetTimetable(assets=asset),
        start_date=None,
        catchup=False,
        max_active_runs=4,
        tags=["databricks", "processing", spec.source],
        default_args={
            "owner": "data-platform",
            "retries": 2,
            "retry_delay": timedelta(minutes=2),
            "retry_exponential_backoff": True,
            "on_failure_callback": on_task_failure,
            "on_success_callback": notify_task_recovery,
        },
        on_failure_callback=notify_dag_failure,
        on_success_callback=notify_dag_recovery,
        # Data freshness: alert when a run has not delivered gold FRESHNESS_SLA after it was queued.
        deadline=freshness_deadline(hours=FRESHNESS_SLA.total_seconds() / 3600),
        # No DAG-level Params: Airflow JSON-schema-checks every Param once per task each time the file is
        # parsed (apache/airflow#32434). Manual runs pass partition_key as
        # run conf, which reaches the task's params ([core] dag_run_conf_overrides_params, on by default).
        doc_md=__doc__,
    ) as dag:

        @task
        def raw_partitions(**context: Any) -> list[dict[str, str]]:
            """The job parameters of every raw partition this run must process."""
            return job_parameters_from_events(
                context.get("triggering_asset_events"),
                bucket=bucket,
                source=spec.source,
                dataset=spec.dataset,
                params=dict(context["params"]),
                output_root=output_root,
                partition_key=getattr(context.get("dag_run"), "partition_key", None),
            )

        run = MedallionRunNowOperator.partial(
            task_id="run_medallion_job",
            job_name=job_name(spec.job_name),
            databricks_conn_id=conn_id,
            deferrable=True,
            polling_period_seconds=poll_seconds(),
            forward_dag_params=False,
            # With OpenLineage configured, the job gets the parent run as job parameter OPENLINEAGE_CONTEXT.
            openlineage_inject_parent_job_info=True,
            execution_timeout=timedelta(hours=2),
        ).expand(job_parameters=(partitions := raw_partitions()))

        gold = DatabricksRunResultOperator.partial(
            task_id="get_gold_result",
            task_key=GOLD_TASK_KEY,
            databricks_conn_id=conn_id,
        ).expand(run_id=run.output)

        @task
        def notify(results: list[Any], processed: list[dict[str, str]], **context: Any) -> list[str]:
            record_pipeline_latencies(context["dag"].dag_id, processed)
            return notify_gold_results(f"{spec.source}/{spec.dataset}", list(results))

        notify(gold.output, partitions)
    return dag
