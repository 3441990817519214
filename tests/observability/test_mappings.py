"""StatsD exporter mappings (values.yaml airflow.statsd.overrideMappings) and Airflow's [metrics] config."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jsonschema
import yaml
from exporter_model import PROMETHEUS_LABEL, PROMETHEUS_NAME, apply, glob_regex, matching_rules, parse_line
from metric_catalog import (
    STATSD_PREFIX,
    airbricks_emitted,
    airflow_emitted,
    documented,
    emitted_by_source,
)
from reference_chart import official_chart_reference

from airbricks import metrics

# Keys of one mapping rule that statsd_exporter v0.30 (the chart 1.22.0 image) accepts.
RULE_KEYS = {
    "match",
    "name",
    "labels",
    "match_type",
    "match_metric_type",
    "observer_type",
    "histogram_options",
    "summary_options",
    "action",
    "help",
    "ttl",
    "honor_labels",
}


def test_documented_list_matches_installed_airflow_registry() -> None:
    """The embedded documented list is Airflow 3.3.2's; an upgrade that changes metrics must revisit it."""
    from metric_catalog import airflow_source_root

    registry_path = airflow_source_root() / "_shared" / "observability" / "metrics" / "metrics_template.yaml"
    registry = {m["name"]: m["type"] for m in yaml.safe_load(registry_path.read_text())["metrics"]}
    assert registry == documented()


def test_values_keep_the_statsd_exporter_on_and_airflow_tagging(chart_values: dict[str, Any]) -> None:
    airflow = chart_values["airflow"]
    assert airflow["statsd"]["enabled"] is True
    metrics_config = airflow["config"]["metrics"]
    # Without InfluxDB-style tags, StatsD drops every tag and all metrics lose dag_id/task_id/pool labels.
    assert metrics_config["statsd_influxdb_enabled"] == "True"
    assert metrics_config["legacy_names_on"] == "False"
    assert "metrics_allow_list" not in metrics_config
    # The chart's own keys stay the chart's (statsd_on/host/port are templated by the official chart).
    assert not {"statsd_on", "statsd_host", "statsd_port"} & set(metrics_config)


def test_statsd_section_passes_the_official_chart_schema(chart_values: dict[str, Any]) -> None:
    schema_path = official_chart_reference() / "values.schema.json"
    schema = json.loads(schema_path.read_text())
    # Validate only our two sections, but against sub-schemas that keep the root's $ref definitions.
    definitions = {"definitions": schema["definitions"]}
    errors = [
        e.message
        for e in jsonschema.Draft7Validator({**schema["properties"]["statsd"], **definitions}).iter_errors(
            chart_values["airflow"]["statsd"]
        )
    ]
    assert errors == []
    config_errors = list(
        jsonschema.Draft7Validator({**schema["properties"]["config"], **definitions}).iter_errors(
            chart_values["airflow"]["config"]
        )
    )
    assert config_errors == []


def test_every_rule_is_well_formed(statsd_mappings: list[dict[str, Any]]) -> None:
    assert statsd_mappings, "overrideMappings is empty: the exporter would fall back to nothing"
    for rule in statsd_mappings:
        assert set(rule) <= RULE_KEYS, f"unknown keys {set(rule) - RULE_KEYS} in {rule}"
        assert rule.get("match_type", "glob") == "glob", rule
        assert rule["match"].startswith(STATSD_PREFIX), rule
        assert PROMETHEUS_NAME.match(rule["name"].replace("${1}", "x")), rule
        assert all(PROMETHEUS_LABEL.match(label) for label in rule.get("labels") or {}), rule
        if rule.get("observer_type") == "histogram":
            buckets = rule["histogram_options"]["buckets"]
            assert buckets == sorted(buckets), rule
            assert len(set(buckets)) == len(buckets), rule
        if rule["name"].endswith("_total"):
            assert rule.get("match_metric_type", "counter") == "counter", rule


def test_every_airflow_rule_matches_a_documented_metric_that_airflow_really_emits(
    statsd_mappings: list[dict[str, Any]],
) -> None:
    emitted = airflow_emitted()
    for rule in statsd_mappings:
        if rule["match"].startswith(f"{STATSD_PREFIX}airbricks."):
            continue
        pattern = glob_regex(rule["match"])
        wanted = rule.get("match_metric_type")
        hits = [n for n, t in emitted.items() if pattern.match(n) and (not wanted or wanted == t)]
        assert hits, f"rule {rule['match']} matches no documented Airflow 3.3.2 metric"
        for name in hits:
            short = name.removeprefix(STATSD_PREFIX)
            assert emitted_by_source(short), f"{short} is documented but no Stats call in airflow emits it"


def test_each_emitted_metric_matches_at_most_one_rule(statsd_mappings: list[dict[str, Any]]) -> None:
    """Rule order never matters: no metric is claimed by two rules."""
    for name, metric_type in {**airflow_emitted(), **airbricks_emitted()}.items():
        rules = matching_rules(statsd_mappings, name, metric_type)
        assert len(rules) <= 1, f"{name} matched by {[r['match'] for r in rules]}"


def test_every_airbricks_metric_is_mapped(statsd_mappings: list[dict[str, Any]]) -> None:
    for name, metric_type in airbricks_emitted().items():
        assert len(matching_rules(statsd_mappings, name, metric_type)) == 1, name


def test_core_airflow_metrics_are_mapped_to_stable_names(statsd_mappings: list[dict[str, Any]]) -> None:
    expected = {
        "airflow.scheduler_heartbeat": ("counter", "airflow_scheduler_heartbeat_total"),
        "airflow.triggerer_heartbeat": ("counter", "airflow_triggerer_heartbeat_total"),
        "airflow.dag_processing.import_errors": ("gauge", "airflow_dag_processing_import_errors"),
        "airflow.dag_processing.total_parse_time": (
            "gauge",
            "airflow_dag_processing_total_parse_time_seconds",
        ),
        "airflow.pool.open_slots": ("gauge", "airflow_pool_open_slots"),
        "airflow.executor.queued_tasks": ("gauge", "airflow_executor_queued_tasks"),
        "airflow.ti.queued": ("gauge", "airflow_ti_queued"),
        "airflow.ti.finish": ("counter", "airflow_ti_finish_total"),
        "airflow.task.duration": ("observer", "airflow_task_duration_seconds"),
        "airflow.dagrun.duration.failed": ("observer", "airflow_dagrun_duration_seconds"),
    }
    for statsd_name, (metric_type, prometheus_name) in expected.items():
        sample = parse_line(
            f"{statsd_name}:1|{ {'counter': 'c', 'gauge': 'g', 'observer': 'ms'}[metric_type] }"
        )
        assert apply(statsd_mappings, sample).name == prometheus_name


def _emit_like_airflow() -> None:
    """The calls Airflow 3.3.2 makes (same names and tags as its call sites), through its own client."""
    from airflow.sdk.observability import stats

    stats.incr("scheduler_heartbeat", 1, 1)
    stats.incr("triggerer_heartbeat", 1, 1)
    stats.gauge("dag_processing.import_errors", 2)
    stats.gauge("dag_processing.total_parse_time", 1.5)
    stats.gauge("pool.open_slots", 120, tags={"pool_name": "default_pool"})
    stats.gauge(
        "executor.open_slots", 30, tags={"status": "open", "executor_class_name": "KubernetesExecutor"}
    )
    stats.gauge("ti.queued", 4, tags={"queue": "default", "dag_id": "ingest_hn", "task_id": "fetch"})
    stats.incr("ti.finish", tags={"dag_id": "ingest_hn", "task_id": "fetch", "state": "failed"})
    stats.incr(
        "operator_failures", tags={"dag_id": "ingest_hn", "task_id": "fetch", "operator_name": "HttpOp"}
    )
    stats.timing("task.duration", 2500.0, tags={"dag_id": "ingest_hn", "task_id": "fetch"})
    stats.timing(
        "dagrun.duration.failed",
        dt.timedelta(seconds=90),
        tags={"dag_id": "ingest_hn", "run_type": "scheduled", "dagrun_id": "scheduled__2026"},
    )


def test_real_airflow_client_output_maps_to_labelled_series(
    statsd_socket: Any, statsd_mappings: list[dict[str, Any]]
) -> None:
    """Airflow's own StatsD client, configured like the chart, → UDP → exporter rules → labelled series."""
    _emit_like_airflow()
    metrics.record_ingested("hackernews", "stories", records=42, bytes_written=2048)
    metrics.record_databricks_run(
        dag_id="databricks_gold", task_id="silver", result_state="failed", duration=61
    )
    metrics.record_pipeline_latency("databricks_gold", dt.timedelta(minutes=50), sla=dt.timedelta(hours=1))

    samples = {}
    for line in statsd_socket.drain():
        event = parse_line(line)
        if matching_rules(statsd_mappings, event.name, event.metric_type):
            sample = apply(statsd_mappings, event)
            samples[sample.name] = sample

    assert samples["airflow_scheduler_heartbeat_total"].labels == {}
    assert samples["airflow_dag_processing_import_errors"].value == 2
    assert samples["airflow_pool_open_slots"].labels == {"pool_name": "default_pool"}
    assert samples["airflow_executor_open_slots"].labels["executor_class_name"] == "KubernetesExecutor"
    assert samples["airflow_ti_queued"].labels == {
        "queue": "default",
        "dag_id": "ingest_hn",
        "task_id": "fetch",
    }
    assert samples["airflow_ti_finish_total"].labels["state"] == "failed"
    assert samples["airflow_operator_failures_total"].labels["operator_name"] == "HttpOp"
    duration = samples["airflow_task_duration_seconds"]
    assert (duration.value, duration.observer) == (2.5, "histogram")
    dagrun = samples["airflow_dagrun_duration_seconds"]
    # dagrun_id is kept out by Airflow's default statsd_disabled_tags (job_id,run_id as patterns).
    assert dagrun.labels == {"state": "failed", "dag_id": "ingest_hn", "run_type": "scheduled"}
    assert dagrun.value == 90
    assert samples["airbricks_ingest_records_total"].labels == {"source": "hackernews", "dataset": "stories"}
    assert samples["airbricks_ingest_records_total"].value == 42
    assert samples["airbricks_ingest_bytes_total"].value == 2048
    run = samples["airbricks_databricks_run_duration_seconds"]
    assert (run.value, run.labels["result_state"]) == (61, "FAILED")
    assert samples["airbricks_databricks_runs_total"].labels["task_id"] == "silver"
    assert samples["airbricks_pipeline_latency_seconds"].value == 3000
    assert samples["airbricks_pipeline_last_latency_seconds"].value == 3000
    assert samples["airbricks_pipeline_latency_sla_seconds"].value == 3600
