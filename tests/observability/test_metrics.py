"""airbricks.metrics: real StatsD packets from Airflow's metrics client, read back from a local UDP socket."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from exporter_model import parse_line

from airbricks import metrics


def _events(statsd_socket: Any) -> dict[str, Any]:
    """The received lines, by name, ignoring Airflow's own metrics (e.g. serde timers)."""
    return {
        e.name: e for e in map(parse_line, statsd_socket.drain()) if e.name.startswith("airflow.airbricks.")
    }


def test_ingestion_counters(statsd_socket: Any) -> None:
    metrics.record_ingested("github", "issues", records=1500, bytes_written=1_048_576)
    events = _events(statsd_socket)
    records = events["airflow.airbricks.ingest.records"]
    assert (records.metric_type, records.value) == ("counter", 1500)
    assert records.tags == {"source": "github", "dataset": "issues"}
    assert events["airflow.airbricks.ingest.bytes"].value == 1_048_576


def test_bytes_are_optional(statsd_socket: Any) -> None:
    metrics.record_ingested("github", "issues", records=0)
    assert set(_events(statsd_socket)) == {"airflow.airbricks.ingest.records"}


def test_databricks_run_timer_is_milliseconds_on_the_wire(statsd_socket: Any) -> None:
    metrics.record_databricks_run(
        dag_id="databricks_gold", task_id="gold", result_state="Success", duration=dt.timedelta(minutes=2)
    )
    lines = [line for line in statsd_socket.drain() if "run_duration" in line]
    assert lines == [
        "airflow.airbricks.databricks.run_duration,dag_id=databricks_gold,task_id=gold,result_state=SUCCESS,job=unknown"
        ":120000.000000|ms"
    ]


def test_pipeline_latency_with_and_without_sla(statsd_socket: Any) -> None:
    metrics.record_pipeline_latency("gold", 1800.0)
    first = _events(statsd_socket)
    assert set(first) == {"airflow.airbricks.pipeline.latency", "airflow.airbricks.pipeline.last_latency"}
    assert first["airflow.airbricks.pipeline.last_latency"].value == 1800.0
    metrics.record_pipeline_latency("gold", dt.timedelta(hours=2), sla=dt.timedelta(hours=1))
    second = _events(statsd_socket)
    assert second["airflow.airbricks.pipeline.latency_sla"].value == 3600
    assert second["airflow.airbricks.pipeline.latency_sla"].tags == {"pipeline": "gold"}


def test_notification_counters(statsd_socket: Any) -> None:
    metrics.record_notification(channel="slack", kind="task_failure", sent=True)
    metrics.record_notification(channel="all", kind="task_failure", sent=False)
    events = _events(statsd_socket)
    assert events["airflow.airbricks.notifications.sent"].tags == {"channel": "slack", "kind": "task_failure"}
    assert events["airflow.airbricks.notifications.suppressed"].value == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.record_ingested("s", "d", records=-1), "records must be >= 0"),
        (lambda: metrics.record_pipeline_latency("p", -5), "latency must be >= 0"),
        (lambda: metrics.record_pipeline_latency("p", 5, sla=-1), "sla must be >= 0"),
        (
            lambda: metrics.record_databricks_run(dag_id="d", task_id="t", result_state="X", duration=-1),
            "duration must be >= 0",
        ),
    ],
)
def test_impossible_values_are_refused_by_name(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_a_broken_metrics_backend_never_fails_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """Metrics are best effort: a client error is logged, the pipeline task carries on."""
    from airflow.sdk.observability import stats

    def broken_factory() -> Any:
        raise OSError("statsd host unreachable")

    stats.initialize(factory=broken_factory, export_legacy_names=False)
    try:
        metrics.record_ingested("s", "d", records=1)
        metrics.record_pipeline_latency("p", 1)
    finally:
        from airflow.sdk._shared.observability.metrics import stats as shared_stats

        shared_stats._factory = None
        shared_stats._backend = None
