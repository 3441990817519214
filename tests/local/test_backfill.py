"""``make backfill`` (airbricks/local/backfill.py): Airflow 3's backfill API through ingestion and processing.

The integration tests share ONE local stack for the module (the demo's stand-ins: moto S3, API replay, the
Databricks emulator, and real ``airflow standalone`` with its scheduler), started by the same code as
``make demo``: 7 daily intervals backfilled, then 3 of them again. Everything is read back over HTTP: the
manifests from S3, the Databricks runs from the emulator's Jobs API, the runs from Airflow's REST API.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airbricks.local import backfill
from airbricks.local.backfill import BackfillInputError, parse_request, run_backfill

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = REPO_ROOT / "dags" / "sources.yaml"
FIRST, LAST = dt.date(2026, 11, 1), dt.date(2026, 11, 7)
RAW, LAKE = "airbricks-raw", "airbricks-lake"
STORIES = "raw/hackernews/stories/"
#: The lake before/after the second backfill, kept for the known-defect test below.
LAKE_SNAPSHOTS: dict[str, Any] = {}


# ---- bad input, named (no Airflow) ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "2026-11-01", "2026-11-02"), "SOURCE='nope' is not a source of"),
        (("hackernews", "2026-11-05", "2026-11-01"), "FROM=2026-11-05 is after TO=2026-11-01"),
        (("hackernews", "2026-11-1", "2026-11-02"), "FROM='2026-11-1' is not a date YYYY-MM-DD"),
        (("hackernews", "2026-11-01", "2026-02-30"), "TO='2026-02-30' is not a date YYYY-MM-DD"),
        (("hackernews", "2026-11-01", ""), "TO='' is not a date"),
        (
            ("hackernews", "2026-11-01", "2026-12-04"),
            "TO=2026-12-04: the intervals of that day have not ended",
        ),
    ],
)
def test_bad_input_is_refused_naming_it(args: tuple[str, str, str], message: str) -> None:
    with pytest.raises(BackfillInputError, match=message.replace("(", r"\(")):
        parse_request(*args, sources_yaml=SOURCES, today=dt.date(2026, 12, 4))


@pytest.mark.parametrize("concurrency", ["0", "four", "-2"])
def test_bad_concurrency_is_refused_naming_it(concurrency: str) -> None:
    with pytest.raises(BackfillInputError, match=f"CONCURRENCY='{concurrency}' must be a whole number"):
        parse_request("hackernews", "2026-11-01", "2026-11-02", concurrency, sources_yaml=SOURCES)


def test_the_request_is_one_backfill_of_the_ingestion_dag_over_whole_days() -> None:
    request = parse_request("hackernews", "2026-11-01", "2026-11-07", "4", sources_yaml=SOURCES)
    assert request.processing_dag_ids == ["databricks_hackernews_stories"]
    assert request.body() == {
        "dag_id": "ingest_hackernews",
        "from_date": "2026-11-01T00:00:00+00:00",
        "to_date": "2026-11-07T23:59:59+00:00",
        "max_active_runs": 4,
        "reprocess_behavior": "completed",
        "run_backwards": False,
    }


def test_a_deployment_url_without_credentials_is_refused_and_secrets_are_never_printed(capsys) -> None:
    with pytest.raises(BackfillInputError, match="AIRFLOW_API_TOKEN nor AIRFLOW_USERNAME"):
        backfill.remote_api({"AIRFLOW_API_URL": "http://127.0.0.1:9"})
    # A refused token: the message says so and does not contain it.
    environ = {"AIRFLOW_API_URL": "http://127.0.0.1:9", "AIRFLOW_API_TOKEN": "s3cr3t-token-value"}
    assert backfill.main(["nope", "2026-11-01", "2026-11-02"], environ=environ) == 2
    out = capsys.readouterr().out
    assert "SOURCE='nope'" in out
    assert "s3cr3t" not in out


# ---- real Airflow, real scheduler, real HTTP ------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    local = backfill.local_stack(tmp_path_factory.mktemp("backfill"), REPO_ROOT, FIRST, LAST, concurrency=4)
    try:
        local.start(["ingest_hackernews", "databricks_hackernews_stories"])
        yield local
    finally:
        local.stop()
        for handler in list(root.handlers):  # the stack logs libraries to its own file; give pytest back its
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def _manifests(local: Any) -> dict[str, dict[str, Any]]:
    s3 = local.ctx.services["s3"]
    client = s3.client()
    return {
        key.removeprefix(STORIES).split("/")[0]: json.loads(
            client.get_object(Bucket=RAW, Key=key)["Body"].read()
        )
        for key in s3.list_keys(RAW, STORIES)
        if key.endswith("/_manifest.json")
    }


def _objects(local: Any, bucket: str, prefix: str) -> dict[str, tuple[str, dt.datetime]]:
    client = local.ctx.services["s3"].client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: (o["ETag"], o["LastModified"]) for page in pages for o in page.get("Contents", [])}


def _emulator_runs(local: Any) -> dict[int, str]:
    """Databricks run id -> its partition_key job parameter, from the emulator's Jobs API over HTTP."""
    server = local.ctx.services["databricks"]
    response = requests.get(
        f"{server.url}/api/2.1/jobs/runs/list",
        headers={"Authorization": f"Bearer {server.token}"},
        params={"limit": 25},
        timeout=30,
    )
    response.raise_for_status()
    return {
        run["run_id"]: {p["name"]: p["value"] for p in run.get("job_parameters", [])}.get("partition_key")
        for run in response.json().get("runs", [])
    }


def _request(first: str, last: str, concurrency: int = 4) -> backfill.BackfillRequest:
    return parse_request("hackernews", first, last, concurrency, sources_yaml=SOURCES)


@pytest.mark.integration
@pytest.mark.airflow
@pytest.mark.slow
def test_backfill_of_7_days_then_3_of_them_replaces_exactly_3(stack: Any) -> None:
    api = stack.ctx.require_api()
    days = [f"dt={FIRST + dt.timedelta(days=n)}" for n in range(7)]

    first = run_backfill(api, _request("2026-11-01", "2026-11-07"), timeout=1200)
    assert [f"{i.logical_date:%Y-%m-%d}" for i in first.intervals] == [d.removeprefix("dt=") for d in days]
    assert not first.failed, [i.line() for i in first.failed]
    assert (first.manifests, first.databricks_runs, first.duplicates) == (7, 7, 0)
    manifests = _manifests(stack)
    assert sorted(manifests) == days
    runs = _emulator_runs(stack)
    assert sorted(runs.values()) == [d.removeprefix("dt=") for d in days]  # one Databricks run per partition
    reported = {d.databricks_run for i in first.intervals for d in i.datasets.values()}
    assert reported == set(runs)
    raw_before = _objects(stack, RAW, STORIES)
    lake_before = _objects(stack, LAKE, "hackernews/stories/")
    assert len(lake_before) >= 7

    again = run_backfill(api, _request("2026-11-03", "2026-11-05", concurrency=2), timeout=1200)
    assert not again.failed, [i.line() for i in again.failed]
    assert (len(again.intervals), again.manifests, again.databricks_runs, again.duplicates) == (3, 3, 3, 0)
    replaced = {"dt=2026-11-03", "dt=2026-11-04", "dt=2026-11-05"}
    after = _manifests(stack)
    assert sorted(after) == days
    for day in days:
        rewritten = after[day]["created_at"] != manifests[day]["created_at"]
        assert rewritten == (day in replaced), day
        # Idempotent: the same partition, byte for byte (same parts, same sha256, same records).
        assert after[day]["parts"] == manifests[day]["parts"], day
    # No duplicate or left-over object: the raw zone holds exactly the same keys with the same bytes.
    raw_after = _objects(stack, RAW, STORIES)
    assert set(raw_after) == set(raw_before)
    for key, (etag, _) in raw_after.items():
        manifest_rewritten = key.endswith("/_manifest.json") and key.split("/")[3] in replaced
        assert (etag != raw_before[key][0]) == manifest_rewritten, key
    runs_after = _emulator_runs(stack)
    new_runs = {run: key for run, key in runs_after.items() if run not in runs}
    assert sorted(new_runs.values()) == ["2026-11-03", "2026-11-04", "2026-11-05"]
    # The lake: every output of the 4 other partitions untouched; the 3 reprocessed ones written again.
    lake_after = _objects(stack, LAKE, "hackernews/stories/")
    for day in days:
        before = {k: v for k, v in lake_before.items() if f"/{day}/" in k}
        now = {k: v for k, v in lake_after.items() if f"/{day}/" in k}
        assert now, day
        if day in replaced:
            assert any(modified > max(m for _, m in before.values()) for _, modified in now.values()), day
        else:
            assert now == before, day
    LAKE_SNAPSHOTS.update(before=lake_before, after=lake_after, replaced=replaced)


@pytest.mark.integration
@pytest.mark.airflow
@pytest.mark.xfail(
    strict=False,  # intermittent: it depends on how the concurrent Databricks runs' output syncs interleave
    reason="KNOWN DEFECT (emulator, not Airflow): reprocessing a day can leave the previous run's parquet "
    "files beside the new ones in s3://airbricks-lake (seen: 10 objects instead of 8 for dt=2026-11-03), "
    "so readers of that folder would see its rows twice; the raw zone is replaced exactly. "
    "Seen in 1 of 3 runs; "
    "remove the marker once the emulator's output sync is fixed (docs/PARTITIONS.md)",
)
def test_reprocessed_lake_partitions_hold_as_many_objects_as_before(stack: Any) -> None:
    if not LAKE_SNAPSHOTS:
        pytest.fail("needs test_backfill_of_7_days_then_3_of_them_replaces_exactly_3 to run first")
    for day in LAKE_SNAPSHOTS["replaced"]:
        before = [k for k in LAKE_SNAPSHOTS["before"] if f"/{day}/" in k]
        now = [k for k in LAKE_SNAPSHOTS["after"] if f"/{day}/" in k]
        assert len(now) == len(before), (day, sorted(before), sorted(now))


@pytest.mark.integration
@pytest.mark.airflow
def test_airflow_refuses_a_backfill_of_the_partitioned_processing_dag(stack: Any) -> None:
    """Airflow 3.3.2: a PartitionedAssetTimetable DAG is not periodic, so the backfill API refuses it; the
    backfill goes through the ingestion DAG and its partitioned asset events (docs/PARTITIONS.md)."""
    api = stack.ctx.require_api()
    body = {**_request("2026-11-01", "2026-11-02").body(), "dag_id": "databricks_hackernews_stories"}
    answer = api.call("POST", "/backfills", json=body, ok=(422,))
    assert "non-periodic schedule that does not support backfills" in json.dumps(answer)
