"""The real bundle (databricks/) end to end: raw pages in the local S3 server -> processing DAG ->
emulator runs bronze/silver/gold with PySpark -> gold summary in XCom, parquet outputs back in S3."""

from __future__ import annotations

import json

import pytest
from dbx_airflow import load_dag, task_states, xcom_values
from dbx_testdata import hn_hit

from airbricks.partitions import DEFAULT_RAW_BUCKET, RawPartition

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

RAW_BUCKET = DEFAULT_RAW_BUCKET
LAKE_BUCKET = "airbricks-e2e-lake"


def _bucket(s3_server, name: str) -> None:
    if name not in {b["Name"] for b in s3_server.client().list_buckets().get("Buckets", [])}:
        s3_server.create_bucket(name)


@pytest.mark.parametrize("key", ["2026-11-20", "2026-11-20T05"], ids=["day", "hour"])
def test_processing_dag_runs_the_real_bundle_on_raw_pages_from_s3(
    key, databricks_emulator, s3_server, airflow_db, monkeypatch, tmp_path
):
    partition = RawPartition.from_key("hackernews", "stories", key)
    for name, value in databricks_emulator.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRBRICKS_LAKE_ROOT", f"s3://{LAKE_BUCKET}")
    monkeypatch.setenv("AIRBRICKS_NOTIFY_STATE_URL", f"file://{tmp_path}/notify-state")
    _bucket(s3_server, RAW_BUCKET)
    _bucket(s3_server, LAKE_BUCKET)
    client = s3_server.client()
    page = {
        "hits": [
            hn_hit("101", author="alice", points=30),
            hn_hit("102", author="bob", points=12, url="https://news.example.org/a"),
            hn_hit("101", author="alice", points=31),  # duplicate across pages: silver keeps one
        ],
        "page": 0,
        "nbPages": 1,
    }
    client.put_object(
        Bucket=RAW_BUCKET, Key=partition.prefix + "part-00001.json", Body=json.dumps(page).encode()
    )
    client.put_object(Bucket=RAW_BUCKET, Key=partition.manifest_key, Body=b'{"records": 3}')
    databricks_emulator.use_s3(s3_server.endpoint_url)

    dag = load_dag("databricks_hackernews_stories.py", "databricks_hackernews_stories", retries=0)
    dag_run = dag.test(run_conf={"partition_key": key})

    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    [gold] = xcom_values(dag_run, "get_gold_result")
    assert (gold["partition_key"], gold["dt"]) == (key, "2026-11-20")
    summary = gold["summary"]
    assert summary["stories"] == 2
    assert summary["total_points"] == 43
    assert summary["top_authors"][0] == {"author": "alice", "stories": 1, "total_points": 31}
    # Each layer under the partition's own folder: an hour never overwrites its day or another hour.
    keys = s3_server.list_keys(LAKE_BUCKET, "hackernews/stories/")
    for folder in ("bronze", "silver", "gold/authors", "gold/domains"):
        expected = f"hackernews/stories/{folder}/{partition.relative_prefix}part-"
        assert any(k.startswith(expected) for k in keys), (expected, keys)
