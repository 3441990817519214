"""The DAG factory turns sources.yaml into DAGs with the promised scheduling and retry settings."""

from __future__ import annotations

import datetime
import pathlib

import pytest
import yaml

from airbricks.ingestion.config import SourceConfigError, load_sources
from airbricks.ingestion.dag_factory import build_source_dag
from airbricks.ingestion.operators import HttpToS3RawOperator
from airbricks.notifications import failure_summary, on_task_failure

DAGS = pathlib.Path(__file__).resolve().parents[2] / "dags"
SOURCES_YAML = DAGS / "sources.yaml"


def test_one_dag_per_source_with_real_data_intervals(monkeypatch):
    from airflow.sdk import Asset, CronDataIntervalTimetable

    monkeypatch.setenv("AIRBRICKS_RAW_BUCKET", "bucket-x")
    dag = build_source_dag(SOURCES_YAML, "hackernews")
    assert dag.dag_id == "ingest_hackernews"
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert {"ingestion", "hackernews"} <= set(dag.tags)
    (task,) = dag.tasks
    assert isinstance(task, HttpToS3RawOperator)
    assert task.task_id == "ingest_stories"
    assert task.owner == "data-platform"
    assert task.retries >= 2
    assert task.retry_exponential_backoff
    assert task.max_retry_delay == datetime.timedelta(seconds=1800)
    assert task.execution_timeout == datetime.timedelta(seconds=3600)
    assert task.on_failure_callback == [on_task_failure] or task.on_failure_callback == on_task_failure
    assert task.outlets == [Asset("s3://bucket-x/raw/hackernews/stories")]
    assert {"path", "query_params", "headers"} <= set(task.template_fields)
    assert task.http_conn_id == "http_hackernews"
    assert build_source_dag(SOURCES_YAML, "github").tasks[0].auth_type == "bearer"


def test_a_broken_source_does_not_take_the_other_dags_down(tmp_path):
    doc = {
        "defaults": {"owner": "team", "start_date": "2026-01-01", "schedule": "@daily"},
        "sources": {"good": {"datasets": {"d": {"path": "/d"}}}, "bad": {"datasets": {}}},
    }
    file = tmp_path / "sources.yaml"
    file.write_text(yaml.safe_dump(doc))

    assert build_source_dag(file, "good").dag_id == "ingest_good"
    with pytest.raises(SourceConfigError, match=r"source 'bad': field 'datasets'"):
        build_source_dag(file, "bad")
    with pytest.raises(SourceConfigError, match=r"source 'bad': field 'datasets'"):
        load_sources(file)  # CI validates every source at once


def test_an_undeclared_source_is_named_with_the_declared_ones(tmp_path):
    with pytest.raises(SourceConfigError, match=r"no source 'nope' under 'sources' \(declared: s\)"):
        build_source_dag(_write(tmp_path), "nope")


def _write(tmp_path, **source_overrides) -> pathlib.Path:
    source = {"schedule": "@daily", "datasets": {"d": {"path": "/d"}}, **source_overrides}
    doc = {"defaults": {"owner": "team", "start_date": "2026-01-01"}, "sources": {"s": source}}
    file = tmp_path / "sources.yaml"
    file.write_text(yaml.safe_dump(doc))
    return file


def test_bad_cron_names_source_and_field(tmp_path):
    with pytest.raises(SourceConfigError, match=r"source 's': field 'schedule'"):
        build_source_dag(_write(tmp_path, schedule="every day"), "s")


def test_unimportable_callback_names_source_and_field(tmp_path):
    file = _write(tmp_path, task={"on_failure_callback": "airbricks.notifications.does_not_exist"})
    with pytest.raises(SourceConfigError, match=r"source 's': field 'task.on_failure_callback'"):
        build_source_dag(file, "s")


def test_failure_summary_is_one_line():
    class TI:
        dag_id, task_id, try_number, run_id = "ingest_x", "ingest_d", 2, "manual__1"

    context = {
        "ti": TI(),
        "run_id": "manual__1",
        "data_interval_start": datetime.datetime(2026, 11, 19, tzinfo=datetime.UTC),
        "data_interval_end": datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC),
        "exception": ValueError("line one\nline two"),
    }
    summary = failure_summary(context)
    assert "\n" not in summary
    assert summary == (
        "dag=ingest_x task=ingest_d run=manual__1 try=2 "
        "interval=2026-11-19T00:00:00+00:00..2026-11-20T00:00:00+00:00 error=ValueError: line one line two"
    )
    on_task_failure({})  # never raises, even on an empty context
