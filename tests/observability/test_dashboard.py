"""The Grafana dashboard: generated, valid, and every query names a metric the exporter really produces."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from exporter_model import promql_metrics
from metric_catalog import mapped_series
from obs_paths import DASHBOARD_FILE, REPO_ROOT

# What the dashboard must show (the brief of the observability component), by the metric that shows it.
REQUIRED_METRICS = {
    "scheduler heartbeat": "airflow_scheduler_heartbeat_total",
    "DAG parse time": "airflow_dag_processing_total_parse_time_seconds",
    "import errors": "airflow_dag_processing_import_errors",
    "queued tasks": "airflow_ti_queued",
    "running tasks": "airflow_ti_running",
    "pool open slots": "airflow_pool_open_slots",
    "executor open slots": "airflow_executor_open_slots",
    "task failures by DAG": "airflow_ti_finish_total",
    "Databricks run durations": "airbricks_databricks_run_duration_seconds_bucket",
    "Databricks run states": "airbricks_databricks_runs_total",
    "pipeline latency": "airbricks_pipeline_last_latency_seconds",
    "ingestion records per source": "airbricks_ingest_records_total",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def _targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]


def test_committed_dashboard_is_the_generator_output() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "observability" / "dashboard.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "airbricks-overview"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], f"panel {panel['title']!r} has no query"
            assert panel["datasource"]["uid"] == "${datasource}"
    # No two panels overlap.
    cells = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))


def test_every_query_names_a_mapped_metric(
    dashboard: dict[str, Any], statsd_mappings: list[dict[str, Any]]
) -> None:
    known = mapped_series(statsd_mappings)
    for title, target in _targets(dashboard):
        used = promql_metrics(target["expr"])
        assert used, f"panel {title!r}: query names no metric: {target['expr']}"
        assert used <= known, f"panel {title!r} uses metrics the exporter never produces: {used - known}"
    variable_query = next(v for v in dashboard["templating"]["list"] if v["name"] == "dag_id")["definition"]
    assert promql_metrics(variable_query) <= known


def test_dashboard_covers_what_operators_need(dashboard: dict[str, Any]) -> None:
    used = set().union(*(promql_metrics(t["expr"]) for _, t in _targets(dashboard)))
    missing = {what: metric for what, metric in REQUIRED_METRICS.items() if metric not in used}
    assert missing == {}
