"""OpenLineage end to end (docs/LINEAGE.md): real ingestion and processing DAG runs (``dag.test()``) with the
Airflow OpenLineage provider writing to a file transport, read back as one chain:

    API endpoint -> ingest_hackernews.ingest_stories -> raw partition
      -> run_medallion_job.bronze -> bronze -> .silver -> silver -> .gold -> gold tables

with the Databricks task runs children of the ``run_medallion_job`` task run (ParentRunFacet) and that
same parent handed to the Databricks job as its ``OPENLINEAGE_CONTEXT`` job parameter.
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import subprocess
import sys

import pytest
from lineage_run import RESULT_MARKER

from airbricks.lineage import chain_from, completed_runs, dataset_uri, read_events
from airbricks.local.lineage_demo import HN_API_PATH, check_chain

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

HERE = pathlib.Path(__file__).resolve().parent
OPS_BUNDLE = HERE.parent / "databricks" / "ops_bundle"
LOGICAL_DATE = "2026-11-20T00:00:00+00:00"  # data interval 2026-11-19 .. 2026-11-20
PARTITION = "s3://airbricks-raw/raw/hackernews/stories/dt=2026-11-19/"


@pytest.fixture
def databricks_bundle_dir():
    return OPS_BUNDLE  # the fast stand-in bundle: same job names, parameters and task keys


@pytest.fixture
def lineage_env(airflow_db, s3_server, replay_server, databricks_emulator, tmp_path):
    from airbricks.local.connections import airflow_conn_env

    replay_server.set_token("github", secrets.token_urlsafe(24))
    s3_server.reset()
    s3_server.create_bucket("airbricks-raw")
    events = tmp_path / "lineage" / "events.jsonl"
    env = {
        **os.environ,
        **airflow_conn_env(s3_server, replay_server),
        **databricks_emulator.airflow_conn_env(),
        "AIRBRICKS_RAW_BUCKET": "airbricks-raw",
        "AIRBRICKS_LAKE_ROOT": "s3://test-lake",
        "AIRBRICKS_NOTIFY_STATE_URL": f"file://{tmp_path}/notify-state",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "airbricks",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        ),
    }
    events.parent.mkdir(parents=True)
    return env, events, replay_server, databricks_emulator


def test_ingestion_and_processing_emit_one_linked_chain(lineage_env):
    env, events_path, replay, dbx = lineage_env
    result = subprocess.run(
        [sys.executable, str(HERE / "lineage_run.py"), LOGICAL_DATE],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    outcome = json.loads(line.removeprefix(RESULT_MARKER))
    assert set(outcome["ingest"].values()) == {"success"}, outcome
    assert set(outcome["processing"].values()) == {"success"}, outcome
    assert outcome["partition"] == PARTITION

    runs = completed_runs(read_events(events_path))
    api = f"{replay.url.rstrip('/')}{HN_API_PATH}"
    assert check_chain(runs, api) == [], "\n".join(
        f"{r.job} {r.run_id} <- {r.parent_run_id} {r.inputs} -> {r.outputs}" for r in runs
    )
    chain = list(chain_from(runs, api))
    assert [run.job for run in chain] == [
        "ingest_hackernews.ingest_stories",
        "databricks_hackernews_stories.run_medallion_job.bronze",
        "databricks_hackernews_stories.run_medallion_job.silver",
        "databricks_hackernews_stories.run_medallion_job.gold",
    ]
    ingest, bronze, silver, gold = chain
    assert ingest.inputs == [dataset_uri(api)]
    assert ingest.outputs == [dataset_uri(PARTITION)]
    assert bronze.inputs == [dataset_uri(PARTITION)]
    assert bronze.outputs == ["s3://test-lake/hackernews/stories/bronze/dt=2026-11-19"]
    assert silver.outputs == ["s3://test-lake/hackernews/stories/silver/dt=2026-11-19"]
    assert gold.outputs == [
        "s3://test-lake/hackernews/stories/gold/authors/dt=2026-11-19",
        "s3://test-lake/hackernews/stories/gold/domains/dt=2026-11-19",
    ]
    # Run ids linked: the three Databricks task runs are children of the Airflow task run that ran the job,
    # whose own event reads the raw partition and writes all three layers.
    [parent] = [run for run in runs if run.job == "databricks_hackernews_stories.run_medallion_job"]
    assert {bronze.parent_run_id, silver.parent_run_id, gold.parent_run_id} == {parent.run_id}
    assert parent.inputs == [dataset_uri(PARTITION)]
    assert set(parent.outputs) == {*bronze.outputs, *silver.outputs, *gold.outputs}
    assert parent.parent_job == "databricks_hackernews_stories"  # the DAG run, as the provider links it
    # ...and the provider handed that parent run to the Databricks job itself (OPENLINEAGE_CONTEXT).
    [job_run] = dbx.state()["runs"]
    got = dbx.client().api_client.do("GET", "/api/2.2/jobs/runs/get", query={"run_id": job_run["run_id"]})
    params = {p["name"]: p["value"] for p in got["job_parameters"]}
    context = json.loads(params["OPENLINEAGE_CONTEXT"])
    assert context["parent"]["run"]["runId"] == parent.run_id
    assert context["parent"]["job"]["name"] == "databricks_hackernews_stories.run_medallion_job"
