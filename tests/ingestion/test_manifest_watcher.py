"""raw_manifest_watcher's parsing, over real HTTP: moto's S3 sends manifest notifications to its own SQS."""

from __future__ import annotations

import json

import pytest

from airbricks.ingestion.manifest_watcher import ManifestNotice, manifest_notices, partition_of_manifest
from airbricks.local.s3 import S3Server
from airbricks.partitions import RawPartition

pytestmark = pytest.mark.integration

BUCKET = "watcher-raw"


def _receive_all(sqs, queue_url: str) -> list[dict]:
    """Every message now in the queue, as SqsSensorTrigger hands them to the watcher (``message_batch``)."""
    messages: list[dict] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        messages.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in batch],
        )
    return messages


def test_a_manifest_written_with_plain_boto3_is_one_notice(s3_server: S3Server) -> None:
    s3_server.create_bucket(BUCKET)
    queue_url = s3_server.notify_manifests(BUCKET, queue_name="watcher-test")
    sqs, s3 = s3_server.sqs_client(), s3_server.client()
    partition = RawPartition.from_key("hackernews", "stories", "2026-11-17T05")
    s3.put_object(Bucket=BUCKET, Key=partition.prefix + "part-00001.json", Body=b'{"hits": []}')
    put = s3.put_object(Bucket=BUCKET, Key=partition.manifest_key, Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/_manifest.json", Body=b"{}")  # outside raw/: not notified

    messages = _receive_all(sqs, queue_url)
    bodies = [json.loads(m["Body"]) for m in messages]
    assert any(body.get("Event") == "s3:TestEvent" for body in bodies), bodies  # sent on configuration
    # The same message delivered twice (SQS is at-least-once) and in two watcher events is one notice.
    notices = manifest_notices([{"message_batch": messages}, {"message_batch": messages[-1:]}])
    assert notices == [ManifestNotice(BUCKET, partition.manifest_key, put["ETag"].strip('"'))]


def test_manifest_checks_name_what_is_wrong() -> None:
    partition = RawPartition.from_key("github", "issues", "2026-11-19")
    fields = {"source": "github", "dataset": "issues", "partition_key": "2026-11-19"}
    notice = ManifestNotice(BUCKET, partition.manifest_key, "abc")
    assert partition_of_manifest(notice, fields, BUCKET) == partition
    with pytest.raises(ValueError, match="not in the raw bucket 'other'"):
        partition_of_manifest(notice, fields, "other")
    with pytest.raises(ValueError, match=r"github/issues/dt=2026-11-19/_manifest.json.*says.*2026-11-18"):
        partition_of_manifest(notice, {**fields, "partition_key": "2026-11-18"}, BUCKET)
    bad = ManifestNotice(BUCKET, "raw/github/issues/2026-11-19/_manifest.json", "abc")
    with pytest.raises(ValueError, match="raw/github/issues/2026-11-19/"):
        partition_of_manifest(bad, fields, BUCKET)


def test_a_message_that_is_no_s3_notification_is_refused_by_id() -> None:
    with pytest.raises(ValueError, match="SQS message m-1: not an S3 event notification"):
        manifest_notices([{"message_batch": [{"MessageId": "m-1", "Body": '{"hello": 1}'}]}])
    with pytest.raises(ValueError, match="not an SQS message batch"):
        manifest_notices([{"status": "success"}])


WATCHER_DAGS = """
from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, PartitionedAssetTimetable, task
trigger = MessageQueueTrigger(scheme="sqs", sqs_queue="http://127.0.0.1:9/123456789012/repro")
watched = Asset(name="repro_watched", watchers=[AssetWatcher(name="repro_queue", trigger=trigger)])
with DAG("repro_watcher_partitioned", schedule=PartitionedAssetTimetable(assets=watched), catchup=False):
    @task
    def consume():
        pass
    consume()
with DAG("repro_watcher_plain", schedule=[watched], catchup=False):
    @task
    def consume_plain():
        pass
    consume_plain()
"""


def test_airflow_3_3_2_registers_a_watcher_event_without_partition_key(airflow_db, tmp_path) -> None:
    """Minimal reproduction (docs/PARTITIONS.md, watcher API): the triggerer's ``Trigger.submit_event``
    turns a watcher's TriggerEvent into an asset event with no partition key, so only a plain
    ``schedule=[asset]`` consumer is queued and a PartitionedAssetTimetable consumer never runs: hence
    raw_manifest_watcher, which emits the keyed event itself."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel, AssetPartitionDagRun
    from airflow.models.dag import DagModel
    from airflow.models.trigger import Trigger
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    (tmp_path / "repro_watcher.py").write_text(WATCHER_DAGS)
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
    with create_session() as session:  # Airflow creates a watcher's trigger only for unpaused consumers
        session.execute(
            update(DagModel).where(DagModel.dag_id.like("repro_watcher_%")).values(is_paused=False)
        )
    sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
    with create_session() as session:
        asset = session.scalars(select(AssetModel).where(AssetModel.name == "repro_watched")).one()
        (trigger_id,) = [trigger.id for trigger in asset.triggers]  # the watcher's trigger row
    payload = {"status": "success", "message_batch": [{"MessageId": "m-1", "Body": "{}"}]}
    with create_session() as session:
        Trigger.submit_event(trigger_id, TriggerEvent(payload), session=session)
    with create_session() as session:
        events = session.execute(
            select(AssetEvent.partition_key, AssetEvent.extra).where(AssetEvent.asset_id == asset.id)
        ).all()
        partitioned = session.scalars(
            select(AssetPartitionDagRun.target_dag_id).where(
                AssetPartitionDagRun.target_dag_id.like("repro_watcher_%")
            )
        ).all()
        plain = session.scalars(
            select(AssetDagRunQueue.target_dag_id).where(AssetDagRunQueue.asset_id == asset.id)
        ).all()
    assert events == [(None, {"from_trigger": True, "payload": payload})]
    assert partitioned == []
    assert plain == ["repro_watcher_plain"]

    # A second event while that queue row is pending (the scheduler has not created the run yet, e.g. the
    # DAG is at max_active_runs) adds no row (ON CONFLICT DO NOTHING keeps the first event's created_at);
    # the run then consumes the events up to that created_at and deletes the row: the second event is
    # consumed by no run, and nothing is queued for it.
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dagrun import DagRun

    with create_session() as session:
        Trigger.submit_event(trigger_id, TriggerEvent({**payload, "n": 2}), session=session)
    with create_session() as session:
        plain_dag = session.scalars(select(DagModel).where(DagModel.dag_id == "repro_watcher_plain")).one()
        SchedulerJobRunner(job=Job())._create_dag_runs_asset_triggered(
            dag_models=[plain_dag], session=session
        )
        session.commit()
    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.dag_id == "repro_watcher_plain")).all()
        consumed = [[e.extra["payload"].get("n", 1) for e in run.consumed_asset_events] for run in runs]
        queued = session.scalars(
            select(AssetDagRunQueue.target_dag_id).where(AssetDagRunQueue.asset_id == asset.id)
        ).all()
    assert consumed == [[1]]  # the second event: in no run
    assert queued == []  # and no run will come for it until another event arrives
