"""The bundle's PySpark transformations and pipeline, on a local SparkSession (no Databricks, no emulator)."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from datetime import UTC, datetime

import pytest
from dbx_testdata import gh_issue, hn_hit, write_partition

pytest.importorskip("pyspark", reason="pyspark is needed for the bundle's transformation tests")

from airbricks_jobs import github, hackernews
from airbricks_jobs.params import JobParameterError, LayerParams, join_path
from airbricks_jobs.pipeline import RawPartitionError, read_raw_pages, run_layer

from airbricks.partitions import JOB_PARAMETER_NAMES, RawPartition


def _hn_pages(spark, tmp_path: pathlib.Path, pages: list) -> object:
    partition = write_partition(tmp_path / "raw", pages, {"records": 0})
    return read_raw_pages(spark, str(partition), hackernews.PAGE_SCHEMA)


# ---- Hacker News ---------------------------------------------------------------------------------


def test_hn_bronze_flattens_every_hit_of_every_page_and_keeps_lineage(spark, tmp_path):
    pages = [
        {"hits": [hn_hit("1"), hn_hit("2")], "page": 0, "nbPages": 2, "query": ""},
        {"hits": [hn_hit("3")], "page": 1, "nbPages": 2},
    ]
    bronze = hackernews.bronze(_hn_pages(spark, tmp_path, pages))

    rows = {r["objectID"]: r for r in bronze.collect()}
    assert set(rows) == {"1", "2", "3"}
    assert rows["3"]["_page"] == 1
    assert rows["1"]["_source_file"] == "part-00001.json"
    assert rows["3"]["_source_file"] == "part-00002.json"


def test_hn_bronze_of_an_empty_page_is_empty_not_a_schema_error(spark, tmp_path):
    bronze = hackernews.bronze(_hn_pages(spark, tmp_path, [{"hits": [], "page": 0, "nbPages": 0}]))
    assert bronze.count() == 0
    assert "objectID" in bronze.columns


def test_hn_silver_types_cleans_and_dedupes(spark, tmp_path):
    pages = [
        {
            "hits": [
                hn_hit("1", points=5),
                hn_hit("1", points=42, title="  Story one  "),  # same story seen twice: keep the best copy
                hn_hit("2", url="", points=None, num_comments=None, author=""),
                hn_hit("3", title="   "),  # no title: dropped
                hn_hit(None),  # no id: dropped
                hn_hit("4", url="http://sub.Example.org:8080/x?y", created_at_i=None),
            ],
            "page": 0,
            "nbPages": 1,
        }
    ]
    silver = hackernews.silver(hackernews.bronze(_hn_pages(spark, tmp_path, pages)))
    rows = {r["story_id"]: r for r in silver.collect()}

    assert set(rows) == {1, 2, 4}
    assert rows[1]["points"] == 42
    assert rows[1]["title"] == "Story one"
    assert rows[1]["domain"] == "example.com"
    assert rows[1]["created_at"] == datetime.fromtimestamp(1795168800, UTC).replace(tzinfo=None)
    assert rows[2]["url"] is None
    assert rows[2]["domain"] is None
    assert rows[2]["points"] == 0
    assert rows[2]["num_comments"] == 0
    assert rows[2]["author"] == "[unknown]"
    assert rows[4]["domain"] == "sub.example.org"
    # created_at_i missing: falls back to parsing created_at
    assert rows[4]["created_at"] == datetime(2026, 11, 20, 10, 0, 0)
    assert dict(silver.dtypes)["story_id"] == "bigint"
    assert dict(silver.dtypes)["points"] == "int"


def test_hn_gold_aggregates_per_author_and_domain(spark, tmp_path):
    pages = [
        {
            "hits": [
                hn_hit("1", author="alice", points=10, num_comments=1),
                hn_hit("2", author="alice", points=30, num_comments=3),
                hn_hit("3", author="bob", points=100, num_comments=50, url=None),
                hn_hit("4", author="carol", points=1, url="https://other.net/a"),
            ],
            "page": 0,
            "nbPages": 1,
        }
    ]
    silver = hackernews.silver(hackernews.bronze(_hn_pages(spark, tmp_path, pages)))
    tables = hackernews.gold_tables(silver)

    authors = [r.asDict() for r in tables["authors"].collect()]
    assert authors[0] == {
        "author": "bob",
        "stories": 1,
        "total_points": 100,
        "avg_points": 100.0,
        "max_points": 100,
        "total_comments": 50,
    }
    assert authors[1]["author"] == "alice"
    assert authors[1]["stories"] == 2
    assert authors[1]["avg_points"] == 20.0
    domains = {r["domain"]: r["stories"] for r in tables["domains"].collect()}
    assert domains == {"example.com": 2, "self": 1, "other.net": 1}

    summary = hackernews.summary(silver, tables, top_n=2)
    assert summary["stories"] == 4
    assert summary["authors"] == 3
    assert summary["total_points"] == 141
    assert [a["author"] for a in summary["top_authors"]] == ["bob", "alice"]
    assert summary["top_story"]["story_id"] == 3
    json.dumps(summary)  # must be JSON-able: it travels through dbutils.notebook.exit


# ---- GitHub issues -------------------------------------------------------------------------------


def _gh_pages(spark, tmp_path: pathlib.Path, pages: list) -> object:
    partition = write_partition(tmp_path / "raw", pages, {"records": 0})
    return read_raw_pages(spark, str(partition), github.PAGE_SCHEMA)


def test_gh_bronze_flattens_issue_arrays_users_labels_and_pr_flag(spark, tmp_path):
    pages = [
        [gh_issue(1), gh_issue(2, pull_request={"url": "https://api.github.com/x"}, labels=[])],
        [gh_issue(3, user=None, labels=[{"name": "a"}, {"name": "b"}])],
    ]
    rows = {r["id"]: r for r in github.bronze(_gh_pages(spark, tmp_path, pages)).collect()}

    assert set(rows) == {1, 2, 3}
    assert rows[1]["user_login"] == "bob"
    assert rows[1]["label_names"] == ["kind:bug"]
    assert rows[1]["is_pull_request"] is False
    assert rows[2]["is_pull_request"] is True
    assert rows[2]["label_names"] == []
    assert rows[3]["user_login"] is None
    assert rows[3]["label_names"] == ["a", "b"]
    assert rows[3]["_source_file"] == "part-00002.json"


def test_gh_silver_keeps_the_latest_update_and_types_timestamps(spark, tmp_path):
    pages = [
        [gh_issue(1, state="open", updated_at="2026-11-20T08:00:00Z")],
        [
            gh_issue(1, state="CLOSED", updated_at="2026-11-20T09:30:00Z", closed_at="2026-11-20T09:30:00Z"),
            gh_issue(2, user=None, created_at="not a date"),
        ],
    ]
    silver = github.silver(github.bronze(_gh_pages(spark, tmp_path, pages)))
    rows = {r["id"]: r for r in silver.collect()}

    assert set(rows) == {1, 2}
    assert rows[1]["state"] == "closed"
    assert rows[1]["closed_at"] == datetime(2026, 11, 20, 9, 30)
    assert rows[2]["author"] == "[unknown]"
    assert rows[2]["created_at"] is None  # malformed timestamp -> null, not a failed job
    assert rows[2]["kind"] == "issue"


def test_gh_gold_counts_labels_states_and_kinds(spark, tmp_path):
    pages = [
        [
            gh_issue(1, labels=[{"name": "bug"}]),
            gh_issue(2, labels=[{"name": "bug"}, {"name": "ui"}], state="closed"),
            gh_issue(3, labels=[], pull_request={"url": "u"}, user={"login": "carol"}),
        ]
    ]
    silver = github.silver(github.bronze(_gh_pages(spark, tmp_path, pages)))
    tables = github.gold_tables(silver)

    labels = {r["label"]: r.asDict() for r in tables["labels"].collect()}
    assert labels["bug"] == {
        "label": "bug",
        "items": 2,
        "open_issues": 1,
        "closed_issues": 1,
        "pull_requests": 0,
    }
    assert labels["(none)"]["pull_requests"] == 1
    summary = github.summary(silver, tables)
    assert summary["items"] == 3
    assert summary["issues"] == 2
    assert summary["pull_requests"] == 1
    assert summary["open_issues"] == 1
    assert summary["top_authors"][0] == {"author": "bob", "items": 2}
    json.dumps(summary)


# ---- Parameters and the end-to-end pipeline ----------------------------------------------------------


DAY_PARAMETERS = {
    "partition_path": "s3://b/raw/hackernews/stories/dt=2026-11-20/",
    "partition_key": "2026-11-20",
    "partition_date": "2026-11-20",
    "partition_folder": "dt=2026-11-20/",
}


def test_layers_write_under_the_partition_folder_given_by_airflow():
    params = LayerParams(
        dataset="hackernews_stories", layer="bronze", output_root="s3://lake/hn/", **DAY_PARAMETERS
    )
    assert params.layer_path("gold", "authors") == "s3://lake/hn/gold/authors/dt=2026-11-20/"
    hour = RawPartition("hackernews", "stories", datetime(2026, 11, 20, 5, tzinfo=UTC), "hour")
    hourly = LayerParams(dataset="x", layer="silver", output_root="/o", **hour.job_parameters("b"))
    assert hourly.layer_path("silver") == "/o/silver/dt=2026-11-20/hr=05/"
    assert join_path("s3://b/", "/a/", "b") == "s3://b/a/b/"


def test_the_bundle_accepts_exactly_the_job_parameters_airflow_sends():
    # The bundle parses nothing: it takes RawPartition.job_parameters as they are (plus output_root).
    names = {f.name for f in dataclasses.fields(LayerParams)} - {"dataset", "layer", "output_root"}
    assert names == set(JOB_PARAMETER_NAMES)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"layer": "platinum"}, "'layer'"),
        ({"partition_path": " "}, "'partition_path' is empty"),
        ({"partition_key": ""}, "'partition_key' is empty"),
        ({"partition_folder": ""}, "'partition_folder' is empty"),
        ({"output_root": ""}, "'output_root' is empty"),
        ({"partition_date": "2026-13-45"}, "'partition_date' is not YYYY-MM-DD"),
        ({"partition_folder": "/abs/"}, "'partition_folder' must be a relative folder"),
        ({"partition_folder": "dt=x/../../"}, "'partition_folder' must be a relative folder"),
        ({"interval_start": "yesterday"}, "'interval_start' is not an ISO-8601"),
        ({"interval_start": "2026-11-21T00:00:00", "interval_end": "2026-11-20T00:00:00"}, "before"),
    ],
)
def test_bad_parameters_fail_with_the_parameter_named(overrides, message):
    values = {"dataset": "hackernews_stories", "layer": "bronze", "output_root": "/lake/", **DAY_PARAMETERS}
    values.update(overrides)
    with pytest.raises(JobParameterError, match=message):
        LayerParams(**values)


def test_run_layer_bronze_silver_gold_end_to_end_and_rerun_is_idempotent(spark, tmp_path):
    pages = [{"hits": [hn_hit("1", points=7), hn_hit("2", author="bob", points=3)], "page": 0, "nbPages": 1}]
    partition = write_partition(tmp_path / "raw", pages, {"records": 2})
    common = {
        **DAY_PARAMETERS,
        "dataset": "hackernews_stories",
        "partition_path": str(partition) + "/",
        "output_root": str(tmp_path / "lake") + "/",
        "interval_start": "2026-11-20T00:00:00+00:00",
        "interval_end": "2026-11-21T00:00:00+00:00",
    }
    run_layer(spark, layer="bronze", **common)
    # A retried Airflow run replays the same partition: the output folder is replaced, not appended to.
    bronze = run_layer(spark, layer="bronze", **common)
    silver = run_layer(spark, layer="silver", **common)
    gold = run_layer(spark, layer="gold", **common)

    assert bronze["rows"] == 2
    assert bronze["manifest_records"] == 2
    assert "warning" not in bronze
    assert silver["rows"] == 2
    assert (gold["dt"], gold["partition_key"]) == ("2026-11-20", "2026-11-20")
    assert gold["tables"]["authors"]["rows"] == 2
    assert gold["summary"]["stories"] == 2
    assert gold["summary"]["total_points"] == 10
    assert spark.read.parquet(str(tmp_path / "lake" / "bronze" / "dt=2026-11-20")).count() == 2
    json.dumps(gold)


def test_run_layer_refuses_a_partition_without_manifest(spark, tmp_path):
    partition = write_partition(tmp_path / "raw", [{"hits": [hn_hit("1")]}], manifest=None)
    with pytest.raises(RawPartitionError, match=r"no _manifest\.json"):
        run_layer(
            spark,
            dataset="hackernews_stories",
            layer="bronze",
            **{**DAY_PARAMETERS, "partition_path": str(partition)},
            output_root=str(tmp_path / "lake"),
        )
    assert not (tmp_path / "lake").exists()


def test_run_layer_reports_manifest_mismatch_and_unknown_dataset(spark, tmp_path):
    partition = write_partition(tmp_path / "raw", [[gh_issue(1)]], {"records": 5})
    result = run_layer(
        spark,
        dataset="github_issues",
        layer="bronze",
        **{**DAY_PARAMETERS, "partition_path": str(partition)},
        output_root=str(tmp_path / "lake"),
    )
    assert result["rows"] == 1
    assert "manifest lists 5 records" in result["warning"]
    with pytest.raises(JobParameterError, match="known datasets"):
        run_layer(
            spark,
            dataset="nope",
            layer="bronze",
            **{**DAY_PARAMETERS, "partition_path": str(partition)},
            output_root=str(tmp_path),
        )
