"""API faults against the real ingestion DAGs (``dag.test()``), over real HTTP to the API replay server.

Several faults share one DAG run where they hit different requests of the same walk (each ``dag.test()``
costs ~12 s); the replay server's request log shows each fault being hit and retried. Records are checked
against the replay server's fixtures (the source) through the published manifest; secrets (the GitHub
token, the AWS secret key) are searched in every captured log line.
"""

from __future__ import annotations

import datetime

import pytest
from faults_support import (
    BUCKET,
    FIXTURES,
    asset_events,
    lost_and_duplicated,
    partition_prefix,
    published_records,
    run_dag,
    source_records,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.airflow]

GH_PATH = "/repos/apache/airflow/issues"
HN_PATH = "/api/v1/search_by_date"
GH_PREFIX = partition_prefix("github", "issues")
HN_PREFIX = partition_prefix("hackernews", "stories")


def _page(request, default: str) -> str:
    return request.query.get("page", default)


def _accounting(env, source: str, prefix: str) -> tuple[int, int, list[str]]:
    published, unlisted = published_records(env["s3"].client(), source, prefix)
    lost, duplicated = lost_and_duplicated(source_records(source), published)
    return lost, duplicated, unlisted


def _failure_message(captured: str, needle: str) -> str:
    """The first captured line containing ``needle`` (the task's error as the user sees it)."""
    return next((line.strip() for line in captured.splitlines() if needle in line), "")


def test_transient_http_faults_are_retried_in_task(ingest_env, record_fault):
    """429 + Retry-After, a 503/503/500 burst, a read timeout and a reset mid-body, all in one walk."""
    replay, watch = ingest_env["replay"], ingest_env["secrets"]
    # Faults apply to the next matching requests in order: attempts 1-6 of page 1 fail, 7 succeeds
    # (http.max_attempts = 8), then page 2 is clean.
    replay.inject(GH_PATH, status=429, retry_after=1)
    replay.inject(GH_PATH, status=503, times=2)
    replay.inject(GH_PATH, status=500)
    replay.inject(GH_PATH, delay=1.6)  # no byte for 1.6 s > read timeout 1 s
    replay.inject(GH_PATH, reset_connection="body")  # RST after the headers and half the body

    run, tis = run_dag("ingest_github")
    text = watch.text()
    leaks = watch.leaks()
    lost, duplicated, unlisted = _accounting(ingest_env, "github", GH_PREFIX)
    requests = [r for r in replay.requests if r.path == GH_PATH]
    pages = [_page(r, "1") for r in requests]
    try_number = tis["ingest_issues"].try_number
    ok = run.state == "success" and try_number == 1 and not unlisted
    observed = f"run {run.state}, try {try_number}, {len(pages)} requests"
    gap_after_429 = requests[1].time - requests[0].time if len(requests) > 1 else 0.0

    record_fault(
        "api: 429 + Retry-After",
        "success after in-task retry honouring Retry-After",
        f"{observed}; waited {gap_after_429:.2f}s after the 429 (Retry-After 1)",
        ok and gap_after_429 >= 0.95 and "HTTP 429" in text,
        records_lost=lost,
        records_duplicated=duplicated,
        secrets_leaked=len(leaks),
    )
    record_fault(
        "api: 500/503 burst",
        "success after in-task retries with backoff",
        f"{observed}; 503, 503, 500 on attempts 2-4",
        ok and pages == ["1"] * 7 + ["2"] and "HTTP 503" in text and "HTTP 500" in text,
    )
    record_fault(
        "api: read timeout",
        "success after in-task retry",
        f"{observed}; attempt 5 timed out after 1 s",
        ok and pages == ["1"] * 7 + ["2"] and "read timed out" in text.lower(),
    )
    record_fault(
        "api: connection reset mid-body",
        "success after in-task retry",
        f"{observed}; attempt 6 reset after half the body",
        ok and pages == ["1"] * 7 + ["2"] and "attempt 6/8 failed" in text,
    )
    assert run.state == "success", tis
    assert try_number == 1, text[-4000:]  # all six failures absorbed by in-task HTTP retries
    assert pages == ["1"] * 7 + ["2"]
    assert gap_after_429 >= 0.95
    assert (lost, duplicated, unlisted) == (0, 0, [])
    assert leaks == []
    events = asset_events(f"s3://{BUCKET}/raw/github/issues")
    assert events[-1]["records"] == sum(source_records("github").values())


def test_truncated_json_then_schema_drift(ingest_env, record_fault):
    """Truncated JSON once (Airflow retries the task), then drift on every try (fails, data kept)."""
    replay, watch, s3 = ingest_env["replay"], ingest_env["secrets"], ingest_env["s3"]
    page_0 = (FIXTURES / "hackernews" / "search_by_date-page-0.json").read_bytes()
    replay.inject(HN_PATH, body=page_0[: len(page_0) // 2])  # page 0 of try 1: 200, half a document

    run, tis = run_dag("ingest_hackernews")
    text = watch.text()
    lost, duplicated, unlisted = _accounting(ingest_env, "hackernews", HN_PREFIX)
    try_number = tis["ingest_stories"].try_number
    record_fault(
        "api: truncated JSON (200, half a body)",
        "try fails validation, Airflow task retry succeeds",
        f"run {run.state}, try {try_number}",
        run.state == "success" and try_number == 2 and "is not valid JSON" in text and not unlisted,
        records_lost=lost,
        records_duplicated=duplicated,
        secrets_leaked=len(watch.leaks()),
    )
    assert run.state == "success", tis
    assert try_number == 2
    assert (lost, duplicated, unlisted) == (0, 0, [])
    assert s3.list_keys(BUCKET, "raw/_staging/") == []
    published = s3.client().get_object(Bucket=BUCKET, Key=HN_PREFIX + "_manifest.json")["Body"].read()
    events_before = len(asset_events(f"s3://{BUCKET}/raw/hackernews/stories"))

    # Schema drift: page 2 (page=1) loses the required 'title' on every try of the next run.
    page_1 = (FIXTURES / "hackernews" / "search_by_date-page-1.json").read_bytes()
    drifted = page_1.replace(b'"title"', b'"headline"')
    replay.add_route("GET", HN_PATH, drifted, match={"page": "1"})
    run, tis = run_dag("ingest_hackernews")
    text = watch.text()
    lost, duplicated, unlisted = _accounting(ingest_env, "hackernews", HN_PREFIX)
    message = _failure_message(text, "misses required field")
    after = s3.client().get_object(Bucket=BUCKET, Key=HN_PREFIX + "_manifest.json")["Body"].read()
    events_after = len(asset_events(f"s3://{BUCKET}/raw/hackernews/stories"))
    handled = (
        run.state == "failed"
        and "['title']" in message
        and "page 2" in message
        and after == published
        and events_after == events_before
        and s3.list_keys(BUCKET, "raw/_staging/") == []
    )
    record_fault(
        "api: schema drift (required field missing)",
        "task fails naming page + field; published partition untouched",
        f"run {run.state}; {message[message.find('hackernews/stories') :][:110]}",
        handled,
        records_lost=lost,
        records_duplicated=duplicated,
        secrets_leaked=len(watch.leaks()),
    )
    assert run.state == "failed"
    assert tis["ingest_stories"].try_number == 3  # every Airflow try failed the same way
    assert "['title']" in message, text[-3000:]
    assert after == published  # byte-identical manifest: nothing was republished
    assert events_after == events_before  # no asset event for a failed interval
    assert (lost, duplicated, unlisted) == (0, 0, [])


def test_pagination_loop_fails_and_keeps_partition(ingest_env, record_fault):
    """The last page's rel="next" points back to page 1: a repeating cursor must not loop or publish."""
    replay, watch, s3 = ingest_env["replay"], ingest_env["secrets"], ingest_env["s3"]
    good, _ = run_dag("ingest_github")
    assert good.state == "success"
    published = s3.client().get_object(Bucket=BUCKET, Key=GH_PREFIX + "_manifest.json")["Body"].read()
    page_2 = (FIXTURES / "github" / "issues-page-2.json").read_bytes()
    headers = {"Content-Type": "application/json; charset=utf-8"}
    replay.add_route("GET", GH_PATH, page_2, headers=headers, match={"page": "2"}, link={"next": 1})
    replay.clear_requests()

    run, tis = run_dag("ingest_github")
    text = watch.text()
    lost, duplicated, unlisted = _accounting(ingest_env, "github", GH_PREFIX)
    message = _failure_message(text, "pagination loop")
    requests_per_try = len(replay.requests) / max(1, tis["ingest_issues"].try_number)
    after = s3.client().get_object(Bucket=BUCKET, Key=GH_PREFIX + "_manifest.json")["Body"].read()
    handled = run.state == "failed" and bool(message) and requests_per_try <= 4 and after == published
    record_fault(
        "api: pagination loop (next link repeats)",
        "task fails with 'pagination loop'; partition untouched",
        f"run {run.state}, {requests_per_try:.0f} requests per try; "
        f"{message[message.find('github/issues') :][:90]}",
        handled,
        records_lost=lost,
        records_duplicated=duplicated,
        secrets_leaked=len(watch.leaks()),
    )
    assert run.state == "failed"
    assert message, text[-3000:]
    assert requests_per_try <= 4  # page 1, page 2, page 1 again -> stop (no endless walk)
    assert after == published
    assert (lost, duplicated, unlisted) == (0, 0, [])


def test_empty_interval_publishes_an_empty_partition(ingest_env, record_fault):
    """An interval with no data: one empty page -> success, a manifest with 0 records (not a gap)."""
    replay, watch, s3 = ingest_env["replay"], ingest_env["secrets"], ingest_env["s3"]
    replay.add_route("GET", HN_PATH, {"hits": [], "page": 0, "nbPages": 0, "nbHits": 0}, match={"page": "0"})
    day = datetime.datetime(2026, 11, 21, tzinfo=datetime.UTC)
    run, _ = run_dag("ingest_hackernews", logical_date=day)
    prefix = partition_prefix("hackernews", "stories", "2026-11-20")
    published, unlisted = published_records(s3.client(), "hackernews", prefix)
    events = asset_events(f"s3://{BUCKET}/raw/hackernews/stories")
    handled = (
        run.state == "success"
        and published is not None
        and sum(published.values()) == 0
        and events
        and events[-1]["records"] == 0
    )
    record_fault(
        "api: empty interval (page with 0 records)",
        "success; manifest with 0 records and an asset event",
        f"run {run.state}, manifest records {None if published is None else sum(published.values())}",
        handled,
        secrets_leaked=len(watch.leaks()),
    )
    assert handled, (run.state, published, events[-1:])
    assert unlisted == []


def test_empty_page_mid_walk_loses_no_records(ingest_env, record_fault):
    """Page 2 of 3 comes back empty (nbPages still 3) on every try: the run must fail and must neither publish
    the 1 page it has as complete nor touch the partition an earlier run published."""
    replay, watch, s3 = ingest_env["replay"], ingest_env["secrets"], ingest_env["s3"]
    run, _ = run_dag("ingest_hackernews")
    assert run.state == "success"
    published = s3.client().get_object(Bucket=BUCKET, Key=HN_PREFIX + "_manifest.json")["Body"].read()

    empty = {"hits": [], "page": 1, "nbPages": 3, "nbHits": 13, "hitsPerPage": 5}
    replay.add_route("GET", HN_PATH, empty, match={"page": "1"})
    run, tis = run_dag("ingest_hackernews")
    text = watch.text()
    lost, duplicated, unlisted = _accounting(ingest_env, "hackernews", HN_PREFIX)
    message = _failure_message(text, "refusing to publish a partial interval")
    after = s3.client().get_object(Bucket=BUCKET, Key=HN_PREFIX + "_manifest.json")["Body"].read()
    handled = run.state == "failed" and "page 2" in message and after == published and lost == 0
    record_fault(
        "api: empty page mid-walk (nbPages says more)",
        "run fails naming the page; the earlier partition stays published, nothing partial",
        f"run {run.state}, try {tis['ingest_stories'].try_number}: {message[:120]}",
        handled,
        records_lost=lost,
        records_duplicated=duplicated,
        secrets_leaked=len(watch.leaks()),
    )
    assert run.state == "failed", tis
    assert "page 2" in message, text[-2000:]
    assert after == published
    assert (lost, duplicated, unlisted) == (0, 0, [])
    assert s3.list_keys(BUCKET, "raw/_staging/") == []


def test_repeating_cursor_fails_without_publishing(ingest_env, record_fault):
    """Cursor pagination whose API hands back the same cursor forever (the operator's execute, real HTTP)."""
    from airbricks.ingestion.operators import HttpToS3RawOperator

    replay, watch, s3 = ingest_env["replay"], ingest_env["secrets"], ingest_env["s3"]
    replay.add_route("GET", "/loopy/items", {"items": [{"id": 1}, {"id": 2}], "next": "c-1"})
    operator = HttpToS3RawOperator(
        task_id="ingest_items",
        source="loopy",
        dataset="items",
        path="/loopy/items",
        records_path="items",
        required_fields=["id"],
        pagination={"style": "cursor", "cursor_param": "cursor", "cursor_path": "next"},
        http_conn_id="http_hackernews",  # the replay server's base URL, no auth
        bucket=BUCKET,
        http_policy={"max_attempts": 2, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.02},
    )
    context = {
        "data_interval_start": datetime.datetime(2026, 11, 19, tzinfo=datetime.UTC),
        "data_interval_end": datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC),
        "run_id": "manual__cursor_loop",
        "outlet_events": {},
    }
    message = ""
    try:
        operator.execute(context)
    except Exception as err:
        message = str(err)
    requests = [r for r in replay.requests if r.path == "/loopy/items"]
    published = s3.list_keys(BUCKET, "raw/loopy/") + s3.list_keys(BUCKET, "raw/_staging/loopy/")
    handled = "pagination loop" in message and len(requests) == 2 and published == []
    record_fault(
        "api: pagination loop (cursor repeats)",
        "task fails with 'pagination loop' after the second page; nothing published",
        f"{len(requests)} requests, {len(published)} objects left in S3; {message[:80]}",
        handled,
        secrets_leaked=len(watch.leaks()),
    )
    assert handled, (message, requests, published)
