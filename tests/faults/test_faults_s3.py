"""S3 faults during the raw-zone publish of the real ingestion DAGs (``dag.test()``).

``S3Hook`` reaches the moto S3 server through :class:`faults_proxy.FaultProxy`, a real TCP proxy that
resets the connection of one chosen request or takes the whole endpoint down (port closed: connections
refused), exactly what boto3 meets when S3 or the network fails. See faults_proxy.py for why a proxy.
"""

from __future__ import annotations

import json

import pytest
from faults_proxy import Rule
from faults_support import (
    BUCKET,
    FAST_OVERRIDES,
    asset_events,
    lost_and_duplicated,
    partition_prefix,
    published_records,
    run_dag,
    source_records,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.airflow]

HN_PREFIX = partition_prefix("hackernews", "stories")
GH_PREFIX = partition_prefix("github", "issues")


def test_endpoint_down_during_part_upload_recovers_on_task_retry(ingest_env, record_fault, monkeypatch):
    """S3 goes away (reset, then refused for 5 s) while page 2 is uploaded; the task retry republishes."""
    s3, proxy, watch = ingest_env["s3"], ingest_env["proxy"], ingest_env["secrets"]
    # The outage outlasts boto3's own retries (standard mode, 3 attempts: at most 1 + 2 s of backoff), so
    # try 1 fails; at 2 s, boto3's jittered third attempt could land after it (about 1 run in 4; seen in CI).
    # The Airflow retry waits >= 8 s (retry_delay: the first retry's minimum): try 2 meets a healthy endpoint.
    slow_retry = {"retry_delay_seconds": 8, "max_retry_delay_seconds": 16}
    overrides = {**FAST_OVERRIDES, "task": {**FAST_OVERRIDES["task"], **slow_retry}}
    monkeypatch.setenv("AIRBRICKS_INGEST_OVERRIDES", json.dumps(overrides))
    # First publication of the partition: pages go straight to their final keys (direct mode; a re-run of
    # a published partition would upload to raw/_staging/ instead, see docs/INGESTION.md).
    proxy.add_rule(
        Rule("PUT", r"/raw/(_staging/)?hackernews/.*/part-00002\.json$", action="down", down_seconds=5)
    )
    events_before = len(asset_events(f"s3://{BUCKET}/raw/hackernews/stories"))  # the DB lives per session

    run, tis = run_dag("ingest_hackernews")
    text = watch.text()
    published, unlisted = published_records(s3.client(), "hackernews", HN_PREFIX)
    lost, duplicated = lost_and_duplicated(source_records("hackernews"), published)
    downs = [r for r in proxy.requests if r[2] == "down"]
    try_number = tis["ingest_stories"].try_number
    staging = s3.list_keys(BUCKET, "raw/_staging/")
    handled = run.state == "success" and try_number == 2 and len(downs) == 1 and not staging and not unlisted
    error = next((line for line in text.splitlines() if "Could not connect" in line or "reset" in line), "")
    record_fault(
        "s3: endpoint down during a part upload",
        "try fails (connection refused), task retry republishes",
        f"run {run.state}, try {try_number}, staging left {len(staging)}; {error.strip()[:70]}",
        handled,
        records_lost=lost,
        records_duplicated=duplicated,
        secrets_leaked=len(watch.leaks()),
    )
    assert handled, (run.state, try_number, downs, staging, unlisted)
    assert (lost, duplicated) == (0, 0)
    # exactly one new event, from try 2
    assert len(asset_events(f"s3://{BUCKET}/raw/hackernews/stories")) == events_before + 1


def test_failure_between_parts_and_manifest_then_rerun(ingest_env, record_fault):
    """The manifest PUT is reset on every try: no manifest -> readers see nothing, no asset event; each try
    of this first publication removes the parts it wrote directly. The rerun (endpoint healthy) publishes the
    partition: exact records, no stale parts."""
    s3, proxy, watch = ingest_env["s3"], ingest_env["proxy"], ingest_env["secrets"]
    manifest_rule = proxy.add_rule(Rule("PUT", r"/_manifest\.json$", action="reset", times=None))
    events_before = len(asset_events(f"s3://{BUCKET}/raw/github/issues"))  # the DB lives per session

    failed, tis = run_dag("ingest_github")
    published, unlisted = published_records(s3.client(), "github", GH_PREFIX)
    new_events = len(asset_events(f"s3://{BUCKET}/raw/github/issues")) - events_before
    parts_in_place = [k for k in unlisted if "/part-" in k]
    staging_left = s3.list_keys(BUCKET, "raw/_staging/")
    handled = (
        failed.state == "failed"
        and tis["ingest_issues"].try_number == 3
        and manifest_rule.hits >= 3
        and published is None  # no manifest: readers ignore the partition
        and not parts_in_place  # a failed first publication cleans up its own parts
        and new_events == 0
    )
    record_fault(
        "s3: failure between parts and manifest",
        "task fails; partition has no manifest and no parts; no asset event",
        f"run {failed.state} after {tis['ingest_issues'].try_number} tries, manifest PUT reset "
        f"{manifest_rule.hits}x, {len(parts_in_place)} parts without manifest, "
        f"{len(staging_left)} staging objects left",
        handled,
        secrets_leaked=len(watch.leaks()),
    )
    assert handled, (failed.state, manifest_rule.hits, published, unlisted, new_events)

    proxy.clear_rules()
    rerun, tis = run_dag("ingest_github")
    published, unlisted = published_records(s3.client(), "github", GH_PREFIX)
    lost, duplicated = lost_and_duplicated(source_records("github"), published)
    new_events = len(asset_events(f"s3://{BUCKET}/raw/github/issues")) - events_before
    handled = rerun.state == "success" and published is not None and not unlisted and new_events == 1
    record_fault(
        "s3: rerun after a partial failure",
        "success; manifest lists exactly the source records, one asset event",
        f"run {rerun.state}, {sum((published or {}).values())} records, {new_events} new event(s), "
        f"unlisted keys {len(unlisted)}",
        handled,
        records_lost=lost,
        records_duplicated=duplicated,
        secrets_leaked=len(watch.leaks()),
    )
    assert handled, (rerun.state, published, unlisted, new_events)
    assert (lost, duplicated) == (0, 0)
