"""The Databricks stage of ``make demo``: emulator + bundle, processing DAG on the ingested partition.

It is the last of ``make demo``'s stages (``airbricks.local.demo.STAGE_FACTORIES``, which loads it by name so
the demo runner never imports the stages built on it) and needs the local-services and ingestion stages
before it (S3 server, raw partitions, asset events). It is dev code: it lives beside the demo, not in the
product package ``airbricks.databricks``, whose DAG ids and settings it only reads.

* ``start``: the Databricks emulator with the repo's bundle (``databricks/``), ``s3://`` parameters mirrored
  from/to the demo's S3 server, the lake bucket, and ``AIRFLOW_CONN_DATABRICKS_DEFAULT`` for Airflow.
* ``dags``: ``databricks_hackernews_stories``, unpaused before ingestion runs so that the scheduler queues
  a run for it when ingestion writes the Hacker News asset event (the production path, not a manual trigger).
* ``run``: wait for that asset-triggered run and its end (bronze -> silver -> gold with PySpark).
* ``summary``: the gold result (the job's ``dbutils.notebook.exit`` value) and the lake objects.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
from pathlib import Path
from typing import Any

from airbricks.databricks.processing import (
    LAKE_ROOT_ENV,
    POLL_SECONDS_ENV,
    ProcessedDataset,
    processed_dataset,
)
from airbricks.local.demo import DagRunResult, DemoContext, Stage, say

LAKE_BUCKET = "airbricks-lake"


def demo_dataset(ctx: DemoContext) -> ProcessedDataset:
    """hackernews/stories as dags/sources.yaml declares its processing (the replay holds a full day of it)."""
    return processed_dataset(Path(ctx.repo_root) / "dags" / "sources.yaml", "hackernews", "stories")


def _instant(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _say(message: str) -> None:
    say(f"databricks: {message}")


class DatabricksStage(Stage):
    """See the module docstring."""

    name = "databricks"

    def __init__(self) -> None:
        self.server: Any = None
        self.run_id: str | None = None
        self.partition_key: str | None = None  # the processing run's own (PartitionedAssetTimetable)
        self.gold: Any = None
        self.state: str = "not run"
        self._last_progress = ""

    def start(self, ctx: DemoContext) -> None:
        from airbricks.emulator.server import EmulatorServer
        from airbricks.local.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY

        s3 = ctx.services.get("s3")
        if s3 is None:
            raise RuntimeError("the Databricks stage needs the local S3 server stage before it")
        s3.create_bucket(LAKE_BUCKET, empty=True)
        # The emulator mirrors s3:// job parameters with boto3 from this process: local placeholder keys.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY_ID)
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_ACCESS_KEY)
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        state_dir = Path(ctx.demo_dir) / "databricks-emulator"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.server = EmulatorServer(
            state_dir=state_dir,
            token=secrets.token_urlsafe(24),
            bundle_dir=Path(ctx.repo_root) / "databricks",
            s3_endpoint_url=s3.endpoint_url,
            # The job clusters' Spark Connect servers start (and warm up) while Airflow starts: the demo runs
            # two job clusters at once (the ingested partition's and the other producer's). No refill: a
            # replacement spare's JVM would only start beside their tasks, on the same 2 cores.
            spare_spark_drivers=2,
            refill_spare_spark_drivers=False,
        ).start()
        ctx.services["databricks"] = self.server
        connection = {
            "conn_type": "databricks",
            "host": self.server.host,
            "schema": "http",
            "port": self.server.port,
            "password": self.server.token,
        }
        ctx.env["AIRFLOW_CONN_DATABRICKS_DEFAULT"] = json.dumps(connection)
        ctx.env[LAKE_ROOT_ENV] = f"s3://{LAKE_BUCKET}"
        ctx.env[POLL_SECONDS_ENV] = "1"  # the demo's job takes seconds, not minutes
        jobs = sorted(self.server.workspace.bundle_job_ids)
        _say(f"emulator on {self.server.url} with bundle jobs {jobs}; lake s3://{LAKE_BUCKET}")

    def dags(self, ctx: DemoContext) -> list[str]:
        return [demo_dataset(ctx).dag_id]

    def _latest_event(self, ctx: DemoContext) -> dict[str, Any] | None:
        uri_suffix = f"/raw/{demo_dataset(ctx).source}/{demo_dataset(ctx).dataset}"
        events = ctx.require_api().get("/assets/events", limit=100, order_by="-timestamp")
        for event in events.get("asset_events", []):
            # Ingestion's event (the other-producer stage's partition has its own run, watched there).
            ingested = str(event.get("source_dag_id") or "").startswith("ingest_")
            if (
                ingested
                and str(event.get("uri", "")).endswith(uri_suffix)
                and (event.get("extra") or {}).get("partition")
            ):
                return event
        return None

    def run(self, ctx: DemoContext) -> None:
        """Wait for the run the scheduler creates from ingestion's asset event, then for its end."""
        import time

        event = self._latest_event(ctx)
        if event is None:
            self.state = "skipped: no asset event of the ingestion stage"
            _say(self.state)
            return
        api = ctx.require_api()
        dag_id = demo_dataset(ctx).dag_id
        _say(f"asset event for {event['extra']['partition']}: waiting for the scheduler to run {dag_id}")
        ctx.progress = f"no run of {dag_id} yet"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = api.get(f"/dags/{dag_id}/dagRuns", limit=10).get("dag_runs", [])
            triggered = [
                run
                for run in runs
                if run.get("run_type") == "asset_triggered"
                and run.get("partition_key") == event.get("partition_key")
            ]
            if triggered:
                self.run_id = triggered[0]["dag_run_id"]
                self.partition_key = triggered[0].get("partition_key")
                break
            time.sleep(0.5)
        else:
            self.state = "no asset-triggered run appeared within 120 s"
            _say(f"{dag_id}: {self.state}")
            return
        _say(f"{dag_id}: asset-triggered run {self.run_id} for partition {self.partition_key}")
        ctx.runs[dag_id] = DagRunResult(dag_id, self.run_id)
        self._wait(ctx, dag_id)

    def _wait(self, ctx: DemoContext, dag_id: str) -> None:
        import time

        api = ctx.require_api()
        result = ctx.runs[dag_id]
        deadline = time.monotonic() + max(float(ctx.run_timeout), 900.0)
        while time.monotonic() < deadline:
            run = api.get(f"/dags/{dag_id}/dagRuns/{self.run_id}")
            self._report_progress(ctx, dag_id)
            if run["state"] in ("success", "failed"):
                result.state = self.state = run["state"]
                result.seconds = time.monotonic() - result.started
                tis = api.get(f"/dags/{dag_id}/dagRuns/{self.run_id}/taskInstances")
                result.tasks = tis.get("task_instances", [])
                _say(f"{dag_id}: run {run['state']} after {result.seconds:.0f}s")
                break
            time.sleep(0.5)
        else:
            self.state = "timed out"
            _say(f"{dag_id}: run did not finish in time")
            return
        if self.state == "success":
            entry = api.get(
                f"/dags/{dag_id}/dagRuns/{self.run_id}/taskInstances/get_gold_result/xcomEntries/return_value",
                map_index=0,
                deserialize="true",
            )
            self.gold = entry.get("value")

    def _report_progress(self, ctx: DemoContext, dag_id: str) -> None:
        """Say the Airflow task states and the Databricks run's task states whenever they change."""
        tis = ctx.require_api().get(f"/dags/{dag_id}/dagRuns/{self.run_id}/taskInstances")
        started = sorted(
            (ti for ti in tis.get("task_instances", []) if ti.get("state")),
            key=lambda ti: (ti.get("start_date") or "~", ti["task_id"]),
        )
        airflow = f"{dag_id} " + " ".join(f"{ti['task_id']}={ti['state']}" for ti in started)
        databricks = ""
        for run in self.server.workspace.jobs.snapshot()["runs"]:
            tasks = " ".join(
                f"{key}={task['result_state'] or task['life_cycle_state']}"
                for key, task in run["tasks"].items()
            )
            databricks += f" | Databricks run {run['run_id']} {run['life_cycle_state']}: {tasks}"
        progress = airflow + databricks
        if progress != self._last_progress:
            self._last_progress = progress
            _say(progress)
        # The heartbeat repeats the short form: the Databricks run once there is one.
        ctx.progress = databricks.removeprefix(" | ") or airflow

    def verify(self, ctx: DemoContext) -> list[str]:
        if self.state != "success":
            return [f"{demo_dataset(ctx).dag_id}: {self.state}"]
        if not isinstance(self.gold, (dict, str)) or not self.gold:
            return [f"{demo_dataset(ctx).dag_id}: no gold result in XCom"]
        return []

    def summary(self, ctx: DemoContext) -> list[str]:
        lines = [f"{demo_dataset(ctx).dag_id}: {self.state} (partition key {self.partition_key})"]
        gold = self.gold
        if isinstance(gold, str):
            with contextlib.suppress(ValueError):
                gold = json.loads(gold)
        if isinstance(gold, dict):
            summary = gold.get("summary", {})
            lines.append(
                f"gold {gold.get('dataset')} dt={gold.get('dt')}: {summary.get('stories')} stories by "
                f"{summary.get('authors')} authors, {summary.get('total_points')} points"
            )
            for author in summary.get("top_authors", [])[:3]:
                lines.append(
                    f"  top author {author['author']}: {author['stories']} stories, "
                    f"{author['total_points']} points"
                )
        s3 = ctx.services.get("s3")
        if s3 is not None:
            keys = [k for k in s3.list_keys(LAKE_BUCKET, "") if k.endswith(".parquet")]
            lines.append(f"lake: {len(keys)} parquet file(s) in s3://{LAKE_BUCKET}/")
        latency = self._trigger_to_gold(ctx)
        if latency is not None:
            dag_id = demo_dataset(ctx).dag_id
            lines.append(f"trigger -> gold: {latency:.0f}s (first ingestion run queued -> {dag_id} ended)")
        return lines

    def _trigger_to_gold(self, ctx: DemoContext) -> float | None:
        """Seconds from the first queued run of the pipeline to the end of the processing run (the same
        span ``make bench``'s end-to-end section measures from the metadata database)."""
        if self.state != "success" or self.run_id is None:
            return None
        api = ctx.require_api()
        queued = []
        for result in ctx.runs.values():
            run = api.get(f"/dags/{result.dag_id}/dagRuns/{result.run_id}")
            if run.get("queued_at"):
                queued.append(_instant(run["queued_at"]))
        end = api.get(f"/dags/{demo_dataset(ctx).dag_id}/dagRuns/{self.run_id}").get("end_date")
        return (_instant(end) - min(queued)).total_seconds() if queued and end else None

    def stop(self, ctx: DemoContext) -> None:
        server = ctx.services.pop("databricks", None)
        if server is not None:
            server.stop()
