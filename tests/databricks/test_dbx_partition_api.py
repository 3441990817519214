"""Airflow 3.3.2's partitioned assets, as the pipeline uses them (docs/PARTITIONS.md), minimal and real: a
non-partitioned producer adds a partition key to its asset event (like HttpToS3RawOperator); the scheduler's
own run-creation code turns it into a run of the PartitionedAssetTimetable consumer (like the processing
DAGs) for that key, and queues nothing for a plain asset-scheduled consumer."""

from __future__ import annotations

import datetime
import textwrap

import pytest

DAGS = textwrap.dedent(
    """
    from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, PartitionedAssetTimetable, task
    import datetime
    raw = Asset("s3://repro-raw/raw/src/ds")
    with DAG("repro_producer", schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
             start_date=datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC), catchup=False):
        @task(outlets=[raw])
        def produce(outlet_events=None):
            outlet_events[raw].extra = {"partition_key": "2026-11-19"}
            outlet_events[raw].add_partitions("2026-11-19")
        produce()
    with DAG("repro_partitioned_consumer", schedule=PartitionedAssetTimetable(assets=raw), catchup=False):
        @task
        def consume():
            pass
        consume()
    with DAG("repro_plain_consumer", schedule=[raw], catchup=False):
        @task
        def consume_plain():
            pass
        consume_plain()
    """
)


def test_partition_keyed_event_queues_a_run_per_key_only_for_partitioned_consumers(airflow_db, tmp_path):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    (tmp_path / "repro.py").write_text(DAGS)
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetPartitionDagRun
    from airflow.models.dag import DagModel
    from sqlalchemy import update

    with create_session() as session:  # new DAGs start paused; the scheduler skips paused DAGs
        session.execute(update(DagModel).where(DagModel.dag_id.like("repro_%")).values(is_paused=False))
    bag.get_dag("repro_producer").test(logical_date=datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC))
    with create_session() as session:
        events = session.execute(select(AssetEvent.source_dag_id, AssetEvent.partition_key)).all()
        queued = session.scalars(select(AssetPartitionDagRun.target_dag_id)).all()
        plain = session.scalars(select(AssetDagRunQueue.target_dag_id)).all()
        SchedulerJobRunner(job=Job())._create_dagruns_for_partitioned_asset_dags(session)
        session.commit()
        runs = session.execute(
            select(DagRun.dag_id, DagRun.partition_key).where(DagRun.dag_id.like("repro_%consumer"))
        ).all()
    assert events == [("repro_producer", "2026-11-19")]  # add_partitions works from a non-partitioned DAG
    assert queued == ["repro_partitioned_consumer"]
    # The scheduler's own code creates the partitioned consumer's run, for exactly that key.
    assert runs == [("repro_partitioned_consumer", "2026-11-19")]
    # Airflow 3.3.2: a partition-keyed event queues nothing for a plain `schedule=[asset]` consumer
    # (AssetManager._queue_dagruns returns early): producer and consumers must switch together.
    assert plain == []
    # Airflow 3.3.2 bug (seen by `make backfill`, docs/PARTITIONS.md): GET /api/v2/assets/events answers 500
    # while a run the event created is still queued: its serializer declares the run's start_date required.
    import pydantic
    from airflow.api_fastapi.core_api.services.public.assets import serialize_asset_events
    from sqlalchemy.orm import selectinload

    with create_session() as session:
        queued_run = session.scalars(
            select(DagRun).where(DagRun.dag_id == "repro_partitioned_consumer")
        ).one()
        assert (queued_run.state, queued_run.start_date) == ("queued", None)
        stored = session.scalars(select(AssetEvent).options(selectinload(AssetEvent.created_dagruns))).all()
        assert [run.run_id for run in stored[0].created_dagruns] == [queued_run.run_id]
        with pytest.raises(pydantic.ValidationError, match=r"created_dagruns\.0\.start_date"):
            serialize_asset_events(stored, session=session)
