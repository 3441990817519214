"""Generate the airbricks Grafana dashboard (chart/files/monitoring/airbricks-dashboard.json).

The dashboard is written as data here rather than as 1,500 lines of hand-edited JSON so that panels stay
uniform (same datasource variable, units, legends) and reviewable. The generated JSON is committed: it is
what the Grafana sidecar ConfigMap (templates/monitoring/grafana-dashboard.yaml) ships and what users
import by hand. tests/observability checks the committed file is this script's output.

    python observability/dashboard.py            # rewrite the JSON
    python observability/dashboard.py --check    # exit 1 if the committed JSON is stale
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DASHBOARD_PATH = REPO_ROOT / "chart" / "files" / "monitoring" / "airbricks-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DAG_FILTER = 'dag_id=~"$dag_id"'


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def _panel(
    title: str,
    targets: list[tuple[str, str]],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    description: str = "",
    width: int = 8,
) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}
        }
        if kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": [_target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)],
        "gridPos": {"w": width, "h": 8},
    }
    if kind == "stat":
        panel["fieldConfig"]["defaults"]["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
        }
    return panel


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def _p95(bucket_metric: str, by: str, selector: str = "") -> str:
    inner = f"{bucket_metric}{{{selector}}}" if selector else bucket_metric
    return f"histogram_quantile(0.95, sum by (le, {by}) (rate({inner}[$__rate_interval])))"


def panels() -> list[dict[str, Any]]:
    """All rows and panels, top to bottom."""
    return [
        _row("Platform health"),
        _panel(
            "Heartbeats (per second)",
            [
                ("sum(rate(airflow_scheduler_heartbeat_total[$__rate_interval]))", "scheduler"),
                ("sum(rate(airflow_triggerer_heartbeat_total[$__rate_interval]))", "triggerer"),
                ("sum(rate(airflow_dag_processor_heartbeat_total[$__rate_interval]))", "dag processor"),
            ],
            unit="ops",
            description="Zero means the component is down (alerts AirflowSchedulerHeartbeatStale, "
            "AirflowTriggererDown, AirflowDagProcessorDown).",
        ),
        _panel(
            "DAG import errors",
            [("max(airflow_dag_processing_import_errors)", "import errors")],
            kind="stat",
            width=4,
            description="DAG files failing to import (alert AirflowDagImportErrors).",
        ),
        _panel("DAGs loaded", [("max(airflow_dagbag_size)", "DAGs")], kind="stat", width=4),
        _panel(
            "DAG parse time",
            [
                ("max(airflow_dag_processing_total_parse_time_seconds)", "all files"),
                (
                    _p95("airflow_dag_processing_last_duration_seconds_bucket", "file_name"),
                    "p95 {{file_name}}",
                ),
            ],
            unit="s",
        ),
        _row("Capacity: executor, pools, queues"),
        _panel(
            "Executor slots",
            [
                ("sum(airflow_executor_open_slots)", "open"),
                ("sum(airflow_executor_queued_tasks)", "queued"),
                ("sum(airflow_executor_running_tasks)", "running"),
            ],
        ),
        _panel(
            "Pool slots",
            [
                ("sum by (pool_name) (airflow_pool_open_slots)", "open {{pool_name}}"),
                ("sum by (pool_name) (airflow_pool_queued_slots)", "queued {{pool_name}}"),
                ("sum by (pool_name) (airflow_pool_running_slots)", "running {{pool_name}}"),
                ("sum by (pool_name) (airflow_pool_starving_tasks)", "starving {{pool_name}}"),
            ],
        ),
        _panel(
            "Queued and running tasks by DAG",
            [
                (f"sum by (dag_id) (airflow_ti_queued{{{DAG_FILTER}}})", "queued {{dag_id}}"),
                (f"sum by (dag_id) (airflow_ti_running{{{DAG_FILTER}}})", "running {{dag_id}}"),
                (f"sum by (dag_id) (airflow_ti_deferred{{{DAG_FILTER}}})", "deferred {{dag_id}}"),
            ],
        ),
        _panel(
            "Scheduler loop duration (p95) and triggers",
            [
                (
                    "histogram_quantile(0.95, sum by (le) "
                    "(rate(airflow_scheduler_loop_duration_seconds_bucket[$__rate_interval])))",
                    "scheduler loop p95 (s)",
                ),
                ("sum(airflow_triggers_running)", "triggers running"),
                ("sum(airflow_triggerer_capacity_left)", "triggerer capacity left"),
            ],
            width=12,
        ),
        _panel(
            "Task queued time (p95)",
            [(_p95("airflow_task_queued_duration_seconds_bucket", "dag_id", DAG_FILTER), "{{dag_id}}")],
            unit="s",
            width=12,
        ),
        _row("Tasks and DAG runs"),
        _panel(
            "Task failures by DAG",
            [
                (
                    f'sum by (dag_id) (increase(airflow_ti_finish_total{{state="failed",{DAG_FILTER}}}'
                    "[$__rate_interval]))",
                    "{{dag_id}}",
                )
            ],
            description="Alert AirflowTaskFailureRateHigh fires above 20% failed over 30 minutes.",
        ),
        _panel(
            "Task duration (p95) by task",
            [
                (
                    _p95("airflow_task_duration_seconds_bucket", "dag_id, task_id", DAG_FILTER),
                    "{{dag_id}}.{{task_id}}",
                )
            ],
            unit="s",
        ),
        _panel(
            "DAG run duration (p95)",
            [
                (
                    _p95("airflow_dagrun_duration_seconds_bucket", "dag_id, state", DAG_FILTER),
                    "{{dag_id}} {{state}}",
                )
            ],
            unit="s",
        ),
        _row("Databricks"),
        _panel(
            "Databricks run duration (p50 / p95)",
            [
                (
                    "histogram_quantile(0.5, sum by (le, task_id) "
                    f"(rate(airbricks_databricks_run_duration_seconds_bucket{{{DAG_FILTER}}}[$__rate_interval])))",
                    "p50 {{task_id}}",
                ),
                (
                    _p95("airbricks_databricks_run_duration_seconds_bucket", "task_id", DAG_FILTER),
                    "p95 {{task_id}}",
                ),
            ],
            unit="s",
            width=12,
        ),
        _panel(
            "Databricks runs by result state",
            [
                (
                    f"sum by (result_state) (increase(airbricks_databricks_runs_total{{{DAG_FILTER}}}"
                    "[$__rate_interval]))",
                    "{{result_state}}",
                )
            ],
            width=12,
        ),
        _row("Pipelines: latency, freshness, ingestion"),
        _panel(
            "End-to-end latency (trigger → gold): last run vs SLA",
            [
                ("max by (pipeline) (airbricks_pipeline_last_latency_seconds)", "last {{pipeline}}"),
                ("max by (pipeline) (airbricks_pipeline_latency_sla_seconds)", "SLA {{pipeline}}"),
                (_p95("airbricks_pipeline_latency_seconds_bucket", "pipeline"), "p95 {{pipeline}}"),
            ],
            unit="s",
            description="Alert AirbricksPipelineLatencyAboveSLA fires when the last run exceeds the SLA.",
        ),
        _panel(
            "Records ingested per source (per hour)",
            [("sum by (source) (increase(airbricks_ingest_records_total[1h]))", "{{source}}")],
        ),
        _panel(
            "Bytes ingested per source (per hour)",
            [("sum by (source) (increase(airbricks_ingest_bytes_total[1h]))", "{{source}}")],
            unit="bytes",
        ),
        _panel(
            "Freshness deadlines missed",
            [("sum by (dag_id) (increase(airflow_deadline_alerts_deadline_missed_total[1h]))", "{{dag_id}}")],
            width=12,
        ),
        _panel(
            "Notifications sent / rate-limited",
            [
                ("sum by (kind) (increase(airbricks_notifications_sent_total[1h]))", "sent {{kind}}"),
                ("sum by (kind) (increase(airbricks_notifications_suppressed_total[1h]))", "held {{kind}}"),
            ],
            width=12,
        ),
    ]


def _layout(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every panel an id and an x/y position, filling rows of 24 columns left to right."""
    x = y = row_height = 0
    for panel_id, item in enumerate(items, start=1):
        grid = item["gridPos"]
        if item["type"] == "row" or x + grid["w"] > 24:
            y, x, row_height = y + row_height, 0, 0
        grid.update(x=x, y=y)
        item["id"] = panel_id
        if item["type"] == "row":
            y += grid["h"]
            continue
        x += grid["w"]
        row_height = max(row_height, grid["h"])
    return items


def dashboard() -> dict[str, Any]:
    """The complete dashboard model (Grafana schema 39)."""
    return {
        "uid": "airbricks-overview",
        "title": "airbricks: Airflow and pipelines",
        "description": "Airflow 3 platform health, capacity, task failures, Databricks runs and pipeline "
        "latency. Source: observability/dashboard.py.",
        "tags": ["airbricks", "airflow", "databricks"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "timezone": "utc",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                {
                    "name": "dag_id",
                    "label": "DAG",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {"query": "label_values(airflow_ti_finish_total, dag_id)", "refId": "dag_id"},
                    "definition": "label_values(airflow_ti_finish_total, dag_id)",
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": _layout(panels()),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed dashboard is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DASHBOARD_PATH.read_text() if DASHBOARD_PATH.exists() else ""
        if current != text:
            print(f"{DASHBOARD_PATH} is stale: run `python observability/dashboard.py`", file=sys.stderr)
            return 1
        return 0
    DASHBOARD_PATH.write_text(text)
    print(f"wrote {DASHBOARD_PATH.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
