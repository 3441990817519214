"""Alert rules: structure, metric names, runbook anchors, `promtool check rules` and `promtool test rules`."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml
from exporter_model import promql_metrics
from metric_catalog import mapped_series
from obs_paths import DOCS_FILE, RULES_FILE

REQUIRED_ALERTS = {
    "AirflowDagImportErrors",
    "AirflowSchedulerHeartbeatStale",
    "AirflowTaskFailureRateHigh",
    "AirbricksPipelineLatencyAboveSLA",
    "AirflowTriggererDown",
}


def _alerts(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def test_required_alerts_exist(alert_rules: dict[str, Any]) -> None:
    names = [rule["alert"] for rule in _alerts(alert_rules)]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) >= REQUIRED_ALERTS


def test_every_alert_queries_only_mapped_metrics(
    alert_rules: dict[str, Any], statsd_mappings: list[dict[str, Any]]
) -> None:
    known = mapped_series(statsd_mappings)
    for rule in _alerts(alert_rules):
        used = promql_metrics(rule["expr"])
        assert used, f"{rule['alert']} names no airflow_/airbricks_ metric"
        assert used <= known, f"{rule['alert']} uses unmapped metrics {used - known}"


def test_every_alert_has_severity_summary_and_a_runbook_section(alert_rules: dict[str, Any]) -> None:
    docs = DOCS_FILE.read_text()
    anchors = {
        re.sub(r"[^a-z0-9]", "", line.lstrip("#").strip().lower())
        for line in docs.splitlines()
        if line.startswith("#")
    }
    for rule in _alerts(alert_rules):
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert anchor in anchors, f"docs/OBSERVABILITY.md has no heading for {rule['alert']}"


def test_promtool_check_rules(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(RULES_FILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts(yaml.safe_load(RULES_FILE.read_text())))} rules found" in result.stdout


# (alert, input series, eval time, labels of the expected alert or None for "must not fire", rendered values)
CASES: list[tuple[str, list[dict[str, str]], str, dict[str, str] | None, dict[str, str]]] = [
    (
        "AirflowSchedulerHeartbeatStale",
        [{"series": "airflow_scheduler_heartbeat_total", "values": "0+12x30"}],
        "20m",
        None,
        {},
    ),
    (
        "AirflowSchedulerHeartbeatStale",
        [{"series": "airflow_scheduler_heartbeat_total", "values": "0+12x10 120x20"}],
        "20m",
        {},
        {},
    ),
    (
        "AirflowTriggererDown",
        [{"series": "airflow_scheduler_heartbeat_total", "values": "0+1x20"}],
        "10m",
        {},
        {},
    ),
    (
        "AirflowDagImportErrors",
        [{"series": "airflow_dag_processing_import_errors", "values": "0x5 2x10"}],
        "14m",
        {},
        {"{{ $value }}": "2"},
    ),
    (
        "AirflowDagImportErrors",
        [{"series": "airflow_dag_processing_import_errors", "values": "0x15"}],
        "14m",
        None,
        {},
    ),
    (
        "AirflowTaskFailureRateHigh",
        [
            {
                "series": 'airflow_ti_finish_total{dag_id="ingest_hn",task_id="t",state="failed"}',
                "values": "0+1x40",
            },
            {
                "series": 'airflow_ti_finish_total{dag_id="ingest_hn",task_id="t",state="success"}',
                "values": "0+1x40",
            },
            {
                "series": 'airflow_ti_finish_total{dag_id="quiet",task_id="t",state="success"}',
                "values": "0+5x40",
            },
        ],
        "40m",
        {"dag_id": "ingest_hn"},
        {"{{ $value | humanizePercentage }}": "50%"},
    ),
    (
        "AirbricksPipelineLatencyAboveSLA",
        [
            {"series": 'airbricks_pipeline_last_latency_seconds{pipeline="gold"}', "values": "5400x5"},
            {"series": 'airbricks_pipeline_latency_sla_seconds{pipeline="gold"}', "values": "3600x5"},
            {"series": 'airbricks_pipeline_last_latency_seconds{pipeline="fast"}', "values": "60x5"},
            {"series": 'airbricks_pipeline_latency_sla_seconds{pipeline="fast"}', "values": "3600x5"},
        ],
        "2m",
        {"pipeline": "gold"},
        {"{{ $value | humanizeDuration }}": "1h 30m 0s"},
    ),
    (
        "AirbricksFreshnessDeadlineMissed",
        [{"series": 'airflow_deadline_alerts_deadline_missed_total{dag_id="gold"}', "values": "0 0 1 1 1"}],
        "4m",
        {"dag_id": "gold"},
        {},
    ),
]


def _render(template: str, labels: dict[str, str], values: dict[str, str]) -> str:
    for placeholder, rendered in values.items():
        template = template.replace(placeholder, rendered)
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)


def test_promtool_unit_tests(promtool: str, alert_rules: dict[str, Any], tmp_path: Any) -> None:
    """Each alert fires on the failure it describes and stays quiet on a healthy series."""
    by_name = {rule["alert"]: rule for rule in _alerts(alert_rules)}
    tests = []
    for alert, series, eval_time, labels, values in CASES:
        rule = by_name[alert]
        expected = []
        if labels is not None:
            expected.append(
                {
                    "exp_labels": {**rule["labels"], **labels},
                    "exp_annotations": {
                        k: _render(v, labels, values) for k, v in rule["annotations"].items()
                    },
                }
            )
        tests.append(
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [{"eval_time": eval_time, "alertname": alert, "exp_alerts": expected}],
            }
        )
    test_file = tmp_path / "rules-test.yaml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": [str(RULES_FILE)], "evaluation_interval": "1m", "tests": tests})
    )
    result = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("alert", sorted(REQUIRED_ALERTS))
def test_required_alerts_are_unit_tested(alert: str) -> None:
    assert any(case[0] == alert and case[3] is not None for case in CASES), f"{alert} has no firing case"
