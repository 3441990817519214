"""The "another producer" stage of ``make demo``: a partition published with plain boto3 gets processed.

Not our ingestion DAG: the stage writes one Hacker News page (a bundled fixture) and then the manifest of
``raw/hackernews/stories/dt=2026-11-18/`` with boto3 alone, as another team's job would. The raw bucket's
S3 notification (``S3Server.notify_manifests``, set up by the local-services stage) reaches SQS, the
``raw_manifest_watcher`` DAG's AssetWatcher picks it up and emits the partition's keyed asset event, and
the scheduler runs the processing DAG for that partition key (docs/PARTITIONS.md, "Any producer").

* ``dags``: ``raw_manifest_watcher`` and the processing DAG (unpaused before any run, like every stage's).
* ``run``: publish right away and return: the partition is processed while ingestion runs (the stage sits
  before the ingestion stage, so its cost overlaps the main pipeline's). A thread then waits for the
  processing run of that key and sends the same SQS message body again (SQS delivers at least once).
* ``verify``: wait for the watcher's run of the duplicate, which must say "already announced"; then the
  processing run's end, its Databricks run (the emulator's REST API: ``partition_key`` job parameter) and
  that the key has exactly one run.
* ``summary``: the notification -> announcement -> processing run, with the partition key.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from airbricks.databricks.processing import processed_dataset
from airbricks.ingestion.manifest_watcher import DAG_ID as WATCHER_DAG_ID
from airbricks.ingestion.manifest_watcher import NOTIFICATIONS_ASSET, manifest_notices
from airbricks.local.demo import AirflowApi, DemoContext, Stage, heartbeat, say
from airbricks.local.replay import BUNDLED_FIXTURES
from airbricks.partitions import RawPartition

SOURCE, DATASET = "hackernews", "stories"
#: The day before the demo interval: a partition no ingestion run of the demo writes.
PRODUCER_KEY = "2026-11-18"
PAGE = BUNDLED_FIXTURES / SOURCE / "search_by_date-page-2.json"


class OtherProducerStage(Stage):
    """See the module docstring."""

    name = "other producer"

    def __init__(self) -> None:
        self.partition = RawPartition.from_key(SOURCE, DATASET, PRODUCER_KEY)
        self.published_at: datetime.datetime | None = None
        self.records = 0
        self.processing_run: dict[str, Any] | None = None
        self.duplicate_verdicts: list[str] = []
        self._before: set[str] = set()  # the watcher's runs before the duplicate was sent
        self._sent = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.databricks: dict[str, Any] = {}
        self.seconds: float | None = None
        self.state = "not published"

    def _dag_id(self, ctx: DemoContext) -> str:
        return processed_dataset(ctx.dags_folder / "sources.yaml", SOURCE, DATASET).dag_id

    def dags(self, ctx: DemoContext) -> list[str]:
        return [WATCHER_DAG_ID, self._dag_id(ctx)]

    def run(self, ctx: DemoContext) -> None:  # type: ignore[override]
        self._start_watching(ctx.require_api())
        s3 = ctx.services["s3"].client()
        body = PAGE.read_bytes()
        self.records = len(json.loads(body)["hits"])
        part_key = self.partition.prefix + "part-00001.json"
        s3.put_object(Bucket=ctx.bucket, Key=part_key, Body=body, ContentType="application/json")
        manifest = {
            "source": SOURCE,
            "dataset": DATASET,
            "partition_key": self.partition.key,
            "partition": self.partition.uri(ctx.bucket),
            "records": self.records,
            "pages": 1,
            "bytes": len(body),
            "producer": "make demo, plain boto3",
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        s3.put_object(
            Bucket=ctx.bucket,
            Key=self.partition.manifest_key,
            Body=json.dumps(manifest).encode(),
            ContentType="application/json",
        )
        self.published_at = datetime.datetime.now(datetime.UTC)
        self.state = "published"
        self._thread = threading.Thread(
            target=self._send_duplicate,
            args=(ctx, ctx.require_api().clone()),
            name="demo-duplicate",
            daemon=True,
        )
        self._thread.start()
        say(
            f"other producer: wrote {self.partition.uri(ctx.bucket)} with plain boto3 (1 page, manifest last)"
        )

    @staticmethod
    def _start_watching(api: AirflowApi) -> None:
        """Have the DAG processor parse the watcher DAG's file now that the DAG is unpaused.

        Airflow 3.3.2 attaches an asset's watcher triggers only when a DAG file is parsed while a DAG
        scheduled on the asset is unpaused (``_find_active_assets``, ``dag_processing/collection.py``):
        unpausing alone starts no watcher until the next parse, up to ``[dag_processor]
        min_file_process_interval`` (30 s) later. The SQS message waits in the queue meanwhile, so this only
        saves time (docs/PARTITIONS.md, "Any producer").
        """
        token = api.get(f"/dags/{WATCHER_DAG_ID}/details")["file_token"]
        api.call("PUT", f"/parseDagFile/{token}", ok=(201,))

    def _wait(self, ctx: DemoContext, what: str, found: Callable[[], Any]) -> Any:
        """Poll ``found`` until it returns something truthy; ``None`` after the run timeout."""
        deadline = time.monotonic() + max(float(ctx.run_timeout), 300.0)
        # verify runs outside the demo's per-stage heartbeat: say what is awaited during a long wait.
        with heartbeat(f"other producer: waiting for {what}"):
            while time.monotonic() < deadline:
                if value := found():
                    return value
                time.sleep(0.5)
        return None

    def _processing_runs(self, ctx: DemoContext, api: AirflowApi | None = None) -> list[dict[str, Any]]:
        api = api or ctx.require_api()
        runs = api.get(f"/dags/{self._dag_id(ctx)}/dagRuns", limit=50).get("dag_runs", [])
        return [r for r in runs if r.get("partition_key") == self.partition.key]

    def _notification_body(self, api: AirflowApi) -> str | None:
        """The SQS message body of this manifest's notification, as the watcher received it."""
        assets = api.get("/assets", name_pattern=NOTIFICATIONS_ASSET).get("assets", [])
        if not assets:
            return None
        events = api.get("/assets/events", asset_id=assets[0]["id"], limit=100).get("asset_events", [])
        for event in events:
            for message in ((event.get("extra") or {}).get("payload") or {}).get("message_batch", []):
                notices = manifest_notices([{"message_batch": [message]}])
                if any(n.key == self.partition.manifest_key for n in notices):
                    return message["Body"]
        return None

    def _router_verdicts(self, ctx: DemoContext, run_id: str) -> list[str]:
        """What each ``announce_partition`` of one watcher run returned (its XCom)."""
        api = ctx.require_api()
        path = f"/dags/{WATCHER_DAG_ID}/dagRuns/{run_id}/taskInstances"
        verdicts = []
        for ti in api.get(path, task_id="announce_partition").get("task_instances", []):
            if ti.get("task_id") == "announce_partition" and ti.get("state") == "success":
                entry = api.get(
                    f"{path}/announce_partition/xcomEntries/return_value", map_index=ti["map_index"]
                )
                verdicts.append(str(entry.get("value")))
        return verdicts

    def _send_duplicate(self, ctx: DemoContext, api: AirflowApi) -> None:
        """Once the partition is announced, deliver its notification again (SQS delivers at least once).

        Runs in a thread started by ``run``, with an API client of its own, so the duplicate's watcher run
        overlaps the main pipeline instead of adding to the demo's time.
        """
        deadline = time.monotonic() + max(float(ctx.run_timeout), 300.0)
        while time.monotonic() < deadline and not self._stop.is_set():
            runs = api.get(f"/dags/{WATCHER_DAG_ID}/dagRuns", limit=100)["dag_runs"]
            # Sent while the watcher DAG is idle: an event arriving while its next run is pending is
            # consumed by no run in Airflow 3.3.2 (docs/PARTITIONS.md; the 5-minute sweep would get it).
            idle = not any(r["state"] in ("queued", "running") for r in runs)
            if idle and self._processing_runs(ctx, api) and (body := self._notification_body(api)):
                self._before = {r["dag_run_id"] for r in runs}
                ctx.services["s3"].sqs_client().send_message(
                    QueueUrl=ctx.services["manifest_queue"], MessageBody=body
                )
                say("other producer: sent the same S3 notification again (SQS delivers at least once)")
                self._sent.set()
                return
            time.sleep(0.5)

    def verify(self, ctx: DemoContext) -> list[str]:
        if self.published_at is None:
            return ["nothing was published"]
        api = ctx.require_api()
        dag_id = self._dag_id(ctx)
        if not self._wait(ctx, "the same notification to be sent again", self._sent.is_set):
            self.state = f"no {dag_id} run for partition key {self.partition.key}, or no watcher event"
            return [self.state]

        def duplicate_handled() -> list[str]:
            runs = api.get(f"/dags/{WATCHER_DAG_ID}/dagRuns", limit=100)["dag_runs"]
            done = [
                r for r in runs if r["dag_run_id"] not in self._before and r["state"] in ("success", "failed")
            ]
            return [
                v
                for r in done
                for v in self._router_verdicts(ctx, r["dag_run_id"])
                if self.partition.manifest_key in v
            ]

        def processed() -> dict[str, Any] | None:
            runs = self._processing_runs(ctx)
            return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

        self.duplicate_verdicts = self._wait(ctx, "the duplicate's watcher run", duplicate_handled) or []
        self.processing_run = self._wait(ctx, f"the {dag_id} run for {self.partition.key}", processed)
        problems = []
        if not any("duplicate" in v for v in self.duplicate_verdicts):
            problems.append(f"the duplicate notification was not recognised: {self.duplicate_verdicts}")
        if self.processing_run is None:
            self.state = f"the {dag_id} run for {self.partition.key} did not finish"
            return [*problems, self.state]
        self.state = self.processing_run["state"]
        end = datetime.datetime.fromisoformat(self.processing_run["end_date"].replace("Z", "+00:00"))
        self.seconds = (end - self.published_at).total_seconds()
        if self.state != "success":
            problems.append(f"{dag_id} run for {self.partition.key}: {self.state}")
        runs = self._processing_runs(ctx)
        if len(runs) != 1:
            problems.append(
                f"{len(runs)} runs of {dag_id} for partition key {self.partition.key}, expected 1"
            )
        self.databricks = self._databricks_run(ctx, self.processing_run["dag_run_id"])
        if self.databricks.get("partition_key") != self.partition.key:
            problems.append(f"the Databricks run got partition_key {self.databricks.get('partition_key')!r}")
        return problems

    def _databricks_run(self, ctx: DemoContext, run_id: str) -> dict[str, Any]:
        """The emulator's run of the processing run: its id, state and job parameters (its REST API)."""
        import requests

        entry = ctx.require_api().get(
            f"/dags/{self._dag_id(ctx)}/dagRuns/{run_id}/taskInstances/run_medallion_job/xcomEntries/return_value",
            map_index=0,
        )
        server = ctx.services["databricks"]
        run = requests.get(
            f"{server.url}/api/2.2/jobs/runs/get",
            params={"run_id": entry["value"]},
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=30,
        ).json()
        parameters = {p["name"]: p["value"] for p in run.get("job_parameters", [])}
        return {"run_id": run.get("run_id"), "state": run.get("state", {}).get("result_state"), **parameters}

    def summary(self, ctx: DemoContext) -> list[str]:
        if self.processing_run is None:
            return [f"other producer: {self.state}"]
        run = self.processing_run
        return [
            f"other producer (plain boto3): {self.partition.uri(ctx.bucket)} ({self.records} records) "
            f"-> S3 notification -> SQS -> {WATCHER_DAG_ID} -> partition key {self.partition.key}",
            f"  {run['dag_id']}: {self.state} (partition key {run.get('partition_key')}), "
            f"Databricks run {self.databricks.get('run_id')} {self.databricks.get('state')} "
            f"(partition_key={self.databricks.get('partition_key')}), {self.seconds:.0f}s after the manifest",
            "  duplicate notification: "
            + ("; ".join(v.split(": ", 1)[-1] for v in self.duplicate_verdicts) or "not seen")
            + f", {len(self._processing_runs(ctx))} run for {self.partition.key}",
        ]

    def stop(self, ctx: DemoContext) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
