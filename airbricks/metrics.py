"""Pipeline metrics emitted by airbricks itself, through Airflow's own metrics client.

Everything here goes through ``airflow.sdk.observability.stats`` (the Task SDK's metrics client, the
public import in Airflow 3.3), so product metrics share Airflow's ``[metrics]`` configuration and reach
the same StatsD exporter, the same Prometheus and the same Grafana dashboard as Airflow's own metrics.

Labels travel as StatsD tags. The chart sets ``[metrics] statsd_influxdb_enabled = True`` so Airflow's
StatsD client writes them in the InfluxDB line style (``name,tag=value:1|c``) that the Prometheus StatsD
exporter turns into labels; without it StatsD drops tags and the metrics arrive unlabelled.

The StatsD names below are a stable contract: ``chart/values.yaml`` (``airflow.statsd.overrideMappings``)
maps each of them to the Prometheus name in the comment, and the dashboard and alert rules query those.

========================================  ================================================  ==========
StatsD name (after the ``airflow.`` prefix) Prometheus name                                 type
========================================  ================================================  ==========
``airbricks.ingest.records``              ``airbricks_ingest_records_total``                counter
``airbricks.ingest.bytes``                ``airbricks_ingest_bytes_total``                  counter
``airbricks.databricks.run_duration``     ``airbricks_databricks_run_duration_seconds``     histogram
``airbricks.databricks.runs``             ``airbricks_databricks_runs_total``               counter
``airbricks.pipeline.latency``            ``airbricks_pipeline_latency_seconds``            histogram
``airbricks.pipeline.last_latency``       ``airbricks_pipeline_last_latency_seconds``       gauge
``airbricks.pipeline.latency_sla``        ``airbricks_pipeline_latency_sla_seconds``        gauge
``airbricks.notifications.sent``          ``airbricks_notifications_sent_total``            counter
``airbricks.notifications.suppressed``    ``airbricks_notifications_suppressed_total``      counter
========================================  ================================================  ==========

A metrics failure never fails the pipeline: every helper logs and swallows client errors.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from types import ModuleType

log = logging.getLogger(__name__)

INGEST_RECORDS: Final = "airbricks.ingest.records"
INGEST_BYTES: Final = "airbricks.ingest.bytes"
DATABRICKS_RUN_DURATION: Final = "airbricks.databricks.run_duration"
DATABRICKS_RUNS: Final = "airbricks.databricks.runs"
PIPELINE_LATENCY: Final = "airbricks.pipeline.latency"
PIPELINE_LAST_LATENCY: Final = "airbricks.pipeline.last_latency"
PIPELINE_LATENCY_SLA: Final = "airbricks.pipeline.latency_sla"
NOTIFICATIONS_SENT: Final = "airbricks.notifications.sent"
NOTIFICATIONS_SUPPRESSED: Final = "airbricks.notifications.suppressed"

#: Every StatsD name this module emits and its StatsD type ("observer" = timer); tests check each one is
#: mapped by the StatsD exporter configuration.
METRIC_TYPES: Final = {
    INGEST_RECORDS: "counter",
    INGEST_BYTES: "counter",
    DATABRICKS_RUN_DURATION: "observer",
    DATABRICKS_RUNS: "counter",
    PIPELINE_LATENCY: "observer",
    PIPELINE_LAST_LATENCY: "gauge",
    PIPELINE_LATENCY_SLA: "gauge",
    NOTIFICATIONS_SENT: "counter",
    NOTIFICATIONS_SUPPRESSED: "counter",
}
ALL_METRICS: Final = tuple(METRIC_TYPES)


def _stats() -> ModuleType:
    """The Task SDK stats module, initialised from ``[metrics]`` if this process has not done it yet.

    Task processes are initialised by Airflow's task runner. Other processes that run our code (the
    triggerer running a deadline callback, ``dag.test()``, a CLI) may not be, and the client would then
    silently drop everything; initialising from the same configuration makes them emit like a task.
    """
    from airflow.sdk._shared.observability.metrics import stats as shared_stats
    from airflow.sdk.observability import stats

    # ``_factory`` is the only way to know whether the task runner already initialised the client.
    if getattr(shared_stats, "_factory", None) is None:
        from airflow.sdk.configuration import conf
        from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

        stats.initialize(
            factory=get_stats_factory(),
            export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=False),
        )
    return stats


def _tags(**tags: Any) -> dict[str, str]:
    """Tag values as strings; ``None`` values are left out rather than sent as the text ``None``."""
    return {key: str(value) for key, value in tags.items() if value is not None and value != ""}


def _emit(kind: str, stat: str, *args: Any, tags: dict[str, str]) -> None:
    try:
        getattr(_stats(), kind)(stat, *args, tags=tags)
    except Exception:  # metrics must never fail a pipeline task
        log.warning("Could not emit metric %s", stat, exc_info=True)


def _non_negative(name: str, value: float) -> float:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def record_ingested(source: str, dataset: str, *, records: int, bytes_written: int | None = None) -> None:
    """Count records (and optionally bytes) an ingestion task wrote to the raw zone.

    :param source: source name as in ``dags/sources.yaml`` (label ``source``).
    :param dataset: dataset of that source (label ``dataset``).
    :param records: number of records written by this task run.
    :param bytes_written: size in bytes of the objects written, if known.
    """
    tags = _tags(source=source, dataset=dataset)
    _emit("incr", INGEST_RECORDS, int(_non_negative("records", records)), tags=tags)
    if bytes_written is not None:
        _emit("incr", INGEST_BYTES, int(_non_negative("bytes_written", bytes_written)), tags=tags)


def record_databricks_run(
    *,
    dag_id: str,
    task_id: str,
    result_state: str,
    duration: dt.timedelta | float,
    job_name: str | None = None,
) -> None:
    """Record one finished Databricks run: its duration and its final state.

    :param dag_id: DAG that triggered the run (label ``dag_id``).
    :param task_id: task that triggered the run (label ``task_id``).
    :param result_state: Databricks result state, e.g. ``SUCCESS``, ``FAILED``, ``TIMEDOUT``, ``CANCELED``
        (label ``result_state``, upper-cased).
    :param duration: wall-clock duration of the run, as a timedelta or in seconds.
    :param job_name: Databricks job name (label ``job``; ``unknown`` when not given, because the StatsD
        exporter drops samples whose label names differ from earlier samples of the same metric).
    """
    seconds = duration.total_seconds() if isinstance(duration, dt.timedelta) else float(duration)
    _non_negative("duration", seconds)
    tags = _tags(dag_id=dag_id, task_id=task_id, result_state=result_state.upper(), job=job_name or "unknown")
    # StatsD timers are milliseconds; the exporter turns them back into seconds.
    _emit("timing", DATABRICKS_RUN_DURATION, dt.timedelta(seconds=seconds), tags=tags)
    _emit("incr", DATABRICKS_RUNS, 1, tags=tags)


def record_pipeline_latency(
    pipeline: str,
    latency: dt.timedelta | float,
    *,
    sla: dt.timedelta | float | None = None,
) -> None:
    """Record end-to-end latency of one pipeline run (data interval end → gold table published).

    Emits the latency as a histogram observation and as a "last value" gauge; when ``sla`` is given it also
    emits the SLA as a gauge so the ``AirbricksPipelineLatencyAboveSLA`` alert compares each pipeline with
    its own target without any per-pipeline rule.

    :param pipeline: pipeline name, usually the processing DAG id (label ``pipeline``).
    :param latency: latency as a timedelta or in seconds.
    :param sla: the pipeline's latency target, as a timedelta or in seconds.
    """
    seconds = latency.total_seconds() if isinstance(latency, dt.timedelta) else float(latency)
    _non_negative("latency", seconds)
    tags = _tags(pipeline=pipeline)
    _emit("timing", PIPELINE_LATENCY, dt.timedelta(seconds=seconds), tags=tags)
    _emit("gauge", PIPELINE_LAST_LATENCY, seconds, tags=tags)
    if sla is not None:
        sla_seconds = sla.total_seconds() if isinstance(sla, dt.timedelta) else float(sla)
        _emit("gauge", PIPELINE_LATENCY_SLA, _non_negative("sla", sla_seconds), tags=tags)


def record_notification(*, channel: str, kind: str, sent: bool) -> None:
    """Count a failure/recovery notification that was sent, or suppressed by the rate limiter."""
    stat = NOTIFICATIONS_SENT if sent else NOTIFICATIONS_SUPPRESSED
    _emit("incr", stat, 1, tags=_tags(channel=channel, kind=kind))
