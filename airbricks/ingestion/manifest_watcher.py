"""Event-driven announcements: any producer's raw-partition manifest becomes a keyed raw-asset event.

A producer that is not one of our ingestion DAGs (another team's job, plain boto3) publishes a partition by
writing its parts and then ``raw/<source>/<dataset>/dt=.../[hr=../]_manifest.json``. The raw bucket sends
an S3 ``ObjectCreated`` notification for each manifest key to an SQS queue; the DAG ``raw_manifest_watcher``
turns each new manifest into the partitioned asset event the processing DAGs are scheduled on::

    SQS --AssetWatcher(MessageQueueTrigger, scheme "sqs")--> asset raw_manifest_notifications (no key)
        --> raw_manifest_watcher: manifest_notices -> announce_partition (one mapped task per manifest)
        --> asset s3://<bucket>/raw/<source>/<dataset>, partition key of the manifest
        --> databricks_<source>_<dataset> (PartitionedAssetTimetable), one run for that key

Why a DAG between the watcher and the raw asset: Airflow 3.3.2's triggerer registers a watcher's
``TriggerEvent`` as an event of the watched asset with ``extra={"from_trigger": True, "payload": ...}``
and **no partition key** (``Trigger.submit_event``), and a keyless event does not trigger a
``PartitionedAssetTimetable`` consumer (docs/PARTITIONS.md). The mapped task reads the S3 event from the
payload, validates key and manifest through :class:`~airbricks.partitions.RawPartition` and emits
``add_partitions(key)`` itself.

Exactly once per manifest (SQS delivers at least once; S3 may notify twice):

* a manifest is identified by its bucket, key and ETag (every manifest differs: it records its
  ``created_at``); the last announced ETag of each partition is kept in Airflow's asset state store of the
  raw asset (``context["asset_state_store"]``), so a duplicate notification announces nothing;
* a notification whose ETag is no longer the object's (a newer manifest replaced it) announces nothing:
  the newer manifest has a notification of its own;
* a manifest naming ``announced_by`` was announced by its producer (our ingestion task emits the keyed
  event itself, :data:`ANNOUNCED_BY_FIELD`), so the router leaves it alone;
* the DAG runs one run at a time (``max_active_runs=1``), and one run's duplicates are merged;
* each run reads every watcher event after the last one read (a watermark in the notifications asset's
  state store), not only its triggering events: Airflow 3.3.2 can leave an event consumed by no run (an
  event arriving while the DAG's queue row is pending), so the DAG also runs every 5 minutes.

Environment (read when the DAG file is parsed):

``AIRBRICKS_MANIFEST_QUEUE_URL``   the SQS queue URL (unset: the asset has no watcher, nothing is announced)
``AIRBRICKS_MANIFEST_QUEUE_CONN_ID``  Airflow AWS connection of the watcher and of the S3 reads
                                   (``aws_default``)
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airbricks.partitions import MANIFEST_NAME, PartitionError, RawPartition, raw_bucket

log = logging.getLogger(__name__)

QUEUE_URL_ENV = "AIRBRICKS_MANIFEST_QUEUE_URL"
CONN_ID_ENV = "AIRBRICKS_MANIFEST_QUEUE_CONN_ID"
DAG_ID = "raw_manifest_watcher"
#: The asset the watcher feeds: one (keyless) event per batch of SQS messages.
NOTIFICATIONS_ASSET = "raw_manifest_notifications"
#: Manifest field naming the task that announces the partition itself (the router then leaves it alone).
ANNOUNCED_BY_FIELD = "announced_by"
#: When the DAG also runs without a new watcher event, to read events Airflow left to no run.
SWEEP_CRON = "*/5 * * * *"
WATERMARK_ID_KEY = "last_event_id"
WATERMARK_TIME_KEY = "last_event_timestamp"
#: Seconds SQS holds the receive call open (long polling: one request per 20 s while the queue is empty).
LONG_POLL_SECONDS = 20


@dataclass(frozen=True)
class ManifestNotice:
    """One S3 ``ObjectCreated`` notification of a manifest key (what identifies one manifest)."""

    bucket: str
    key: str
    etag: str

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key} (ETag {self.etag})"


def _messages(payload: Any) -> list[Any]:
    """The SQS messages of one watcher event (``SqsSensorTrigger``: ``{"message_batch": [...]}``)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("message_batch"), list):
        raise ValueError(f"watcher event payload is not an SQS message batch: {str(payload)[:300]}")
    return payload["message_batch"]


def manifest_notices(payloads: Iterable[Any]) -> list[ManifestNotice]:
    """The manifest notifications in watcher event payloads, in order, each (bucket, key, ETag) once.

    Skips S3's ``s3:TestEvent`` (sent when a notification is configured), other event names and other
    keys, logging each; a message body that is not an S3 notification fails, naming the message.
    """
    found: dict[ManifestNotice, None] = {}
    for payload in payloads:
        for message in _messages(payload):
            message_id = message.get("MessageId", "?") if isinstance(message, dict) else "?"
            try:
                body = json.loads(message["Body"])
            except (TypeError, KeyError, ValueError) as exc:
                raise ValueError(f"SQS message {message_id}: body is not JSON ({exc})") from None
            if body.get("Event") == "s3:TestEvent":
                log.info(
                    "SQS message %s: S3 test event of bucket %s, skipped", message_id, body.get("Bucket")
                )
                continue
            records = body.get("Records")
            if not isinstance(records, list):
                raise ValueError(f"SQS message {message_id}: not an S3 event notification: {str(body)[:300]}")
            for record in records:
                try:
                    name = record["eventName"]
                    bucket = record["s3"]["bucket"]["name"]
                    # S3 URL-encodes the key in notifications (a space is "+").
                    key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
                    etag = str(record["s3"]["object"].get("eTag") or "").strip('"')
                except (TypeError, KeyError) as exc:
                    raise ValueError(f"SQS message {message_id}: S3 record without {exc}: {record}") from None
                if not name.startswith("ObjectCreated:") or not key.endswith("/" + MANIFEST_NAME):
                    log.info(
                        "SQS message %s: %s of s3://%s/%s is no new manifest, skipped",
                        message_id,
                        name,
                        bucket,
                        key,
                    )
                    continue
                found[ManifestNotice(bucket, key, etag)] = None
    return list(found)


def partition_of_manifest(notice: ManifestNotice, manifest: Any, bucket: str) -> RawPartition:
    """The partition a manifest publishes, checked: raw bucket, key layout, and the manifest's own fields.

    :raises ValueError: naming the manifest and what is wrong.
    """
    if notice.bucket != bucket:
        raise ValueError(f"{notice.where}: not in the raw bucket {bucket!r}")
    try:
        partition = RawPartition.from_prefix(notice.key.removesuffix(MANIFEST_NAME))
    except PartitionError as exc:
        raise ValueError(f"{notice.where}: {exc}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{notice.where}: the manifest is not a JSON object")
    expected = {"source": partition.source, "dataset": partition.dataset, "partition_key": partition.key}
    wrong = {name: manifest.get(name) for name, value in expected.items() if manifest.get(name) != value}
    if wrong:
        raise ValueError(f"{notice.where}: the manifest says {wrong}, its key says {expected}")
    return partition


def _state_key(partition: RawPartition) -> str:
    return f"manifest_etag:{partition.key}"


def build_manifest_watcher_dag(config_path: str | os.PathLike[str]) -> Any:
    """The DAG ``raw_manifest_watcher`` for the raw assets of ``config_path`` (``sources.yaml``)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, AssetWatcher, CronTriggerTimetable, task

    from airbricks.ingestion.assets import raw_asset
    from airbricks.ingestion.config import load_sources

    bucket = raw_bucket()
    queue_url = os.environ.get(QUEUE_URL_ENV, "").strip()
    conn_id = os.environ.get(CONN_ID_ENV, "").strip() or "aws_default"
    assets = {
        (source.name, name): raw_asset(bucket, source.name, name)
        for source in load_sources(config_path)
        for name in source.datasets
    }
    watchers = []
    if queue_url:
        from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

        trigger = MessageQueueTrigger(
            scheme="sqs",
            sqs_queue=queue_url,
            aws_conn_id=conn_id,
            max_messages=10,
            wait_time_seconds=LONG_POLL_SECONDS,
            waiter_delay=1,
        )
        watchers.append(AssetWatcher(name="raw_manifest_queue", trigger=trigger))
    notifications = Asset(name=NOTIFICATIONS_ASSET, watchers=watchers)

    with DAG(
        dag_id=DAG_ID,
        description=(
            f"Announce raw partitions any producer publishes: S3 manifest notifications from "
            f"{queue_url or f'(no queue: set {QUEUE_URL_ENV})'} -> keyed events of the raw assets"
        ),
        # On each watcher event, and every SWEEP_CRON for events no run consumed (docs/PARTITIONS.md).
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(SWEEP_CRON, timezone="UTC"), assets=notifications
        ),
        start_date=datetime(2026, 11, 1, tzinfo=UTC),  # the sweep's cron needs one; catchup off: no backlog
        catchup=False,
        # One run at a time: the ETag check and the write of the asset state store must not interleave.
        max_active_runs=1,
        tags=["ingestion", "raw", "event-driven"],
        default_args={
            "owner": "data-platform",
            "retries": 2,
            "retry_delay": timedelta(seconds=30),
        },
        doc_md=__doc__,
    ) as dag:

        @task(inlets=[notifications])
        def manifest_notices_of_run(**context: Any) -> list[dict[str, str]]:
            """The distinct manifest notifications of every watcher event not read by an earlier run.

            Not just this run's triggering events: Airflow 3.3.2 can leave an event consumed by no run
            (docs/PARTITIONS.md), so each run reads the asset's events after the last one read (kept in
            the asset state store), and the DAG also runs every SWEEP_CRON to pick such events up.
            """
            state = context["asset_state_store"][notifications]
            last_id = int(state.get(WATERMARK_ID_KEY) or 0)
            accessor = context["inlet_events"][notifications]
            if since := state.get(WATERMARK_TIME_KEY):
                accessor = accessor.after(str(since))  # inclusive: the last event read is dropped by id
            events = [event for event in accessor if event.id > last_id]
            notices = manifest_notices((event.extra or {}).get("payload") for event in events)
            log.info("%d manifest notification(s) in %d unread watcher event(s)", len(notices), len(events))
            if events:
                newest = max(events, key=lambda event: event.id)
                state.set(WATERMARK_ID_KEY, newest.id)
                state.set(WATERMARK_TIME_KEY, newest.timestamp.isoformat())
            return [asdict(notice) for notice in notices]

        @task(outlets=list(assets.values()))
        def announce_partition(notice: dict[str, str], **context: Any) -> str:
            """Emit the keyed raw-asset event of one new manifest (or say why not)."""
            manifest_notice = ManifestNotice(**notice)
            s3 = S3Hook(aws_conn_id=conn_id).get_conn()
            try:
                response = s3.get_object(Bucket=manifest_notice.bucket, Key=manifest_notice.key)
            except s3.exceptions.NoSuchKey:
                return f"skipped {manifest_notice.where}: deleted since (a producer re-publishing it)"
            etag = str(response.get("ETag", "")).strip('"')
            if etag != manifest_notice.etag:
                return f"skipped {manifest_notice.where}: replaced since (now ETag {etag})"
            try:
                manifest = json.loads(response["Body"].read())
            except ValueError as exc:
                raise ValueError(f"{manifest_notice.where}: the manifest is not JSON ({exc})") from None
            partition = partition_of_manifest(manifest_notice, manifest, bucket)
            if manifest.get(ANNOUNCED_BY_FIELD):
                return f"skipped {partition.uri(bucket)}: announced by {manifest[ANNOUNCED_BY_FIELD]}"
            asset = assets.get((partition.source, partition.dataset))
            if asset is None:
                raise ValueError(
                    f"{manifest_notice.where}: dataset {partition.source}/{partition.dataset} is not "
                    f"declared in sources.yaml (declared: {sorted('/'.join(k) for k in assets)})"
                )
            state = context["asset_state_store"][asset]
            if state.get(_state_key(partition)) == etag:
                return f"skipped {manifest_notice.where}: already announced (duplicate notification)"
            event = context["outlet_events"][asset]
            event.extra = {
                **partition.to_extra(bucket),
                "manifest_key": partition.manifest_key,
                "manifest_etag": etag,
                **{name: manifest[name] for name in ("records", "pages", "bytes") if name in manifest},
            }
            event.add_partitions(partition.key)
            # Written last: a failure before it marks nothing, so the retry announces. (Airflow registers the
            # event when the task succeeds, just after this: only a kill in between loses the announcement.)
            state.set(_state_key(partition), etag)
            return f"announced {partition.uri(bucket)} partition key {partition.key}"

        announce_partition.expand(notice=manifest_notices_of_run())
    return dag
