"""The real ingestion DAGs of ``dags/`` run by real Airflow (``dag.test()``) against the local stand-ins.

Each ``dag.test()`` costs ~12 s, so this file keeps to the cases where Airflow itself matters (templating,
connections, asset events, task state); fault and publish logic is covered without Airflow in
test_ingest_end_to_end.py and test_ingest_http.py.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import secrets

import pytest

from airbricks.ingestion.raw_zone import read_manifest

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

DAGS = pathlib.Path(__file__).resolve().parents[2] / "dags"  # one DAG per file, named after its dag_id
BUCKET = "airbricks-raw"
LOGICAL_DATE = datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC)  # interval 2026-11-19 .. 2026-11-20
HN_PREFIX = "raw/hackernews/stories/dt=2026-11-19/"
GH_PREFIX = "raw/github/issues/dt=2026-11-19/"
FAST_RETRIES = {
    "task": {"retries": 2, "retry_delay_seconds": 0.1, "max_retry_delay_seconds": 1},
    "http": {"max_attempts": 4, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05},
}


@pytest.fixture
def env(airflow_db, s3_server, replay_server, monkeypatch):
    """Connections to the stand-ins (github requires a freshly generated token), tiny retry delays."""
    from airbricks.local.connections import airflow_conn_env

    replay_server.set_token("github", secrets.token_urlsafe(24))
    for name, value in airflow_conn_env(s3_server, replay_server).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRBRICKS_INGEST_OVERRIDES", json.dumps(FAST_RETRIES))
    monkeypatch.setenv("AIRBRICKS_INGEST_MAX_WAIT_SECONDS", "0.2")
    s3_server.reset()
    s3_server.create_bucket(BUCKET)
    return s3_server, replay_server


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=DAGS / f"{dag_id}.py")
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def _run(dag_id: str):
    run = _dag(dag_id).test(logical_date=LOGICAL_DATE)
    ti = {t.task_id: t for t in run.get_task_instances()}
    return run, ti


def _objects(s3, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    return {
        key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in s3.list_keys(BUCKET, prefix)
    }


def _asset_events(uri: str, run_id: str | None = None) -> list[dict]:
    """Extras of the asset events of ``uri`` (of one DAG run's tasks when ``run_id`` is given).

    The metadata DB is shared by the whole test session: other tests' events on this asset are there too.
    """
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(AssetEvent.extra, AssetEvent.partition_key)
    query = query.join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == uri)
    if run_id is not None:
        query = query.where(AssetEvent.source_run_id == run_id)
    with create_session() as session:
        rows = session.execute(query.order_by(AssetEvent.id)).all()
    # The event's own partition key (a partitioned asset event) must be the one its extra names.
    for extra, partition_key in rows:
        assert partition_key == extra["partition_key"], (partition_key, extra)
    return [extra for extra, _ in rows]


def _xcom_return(run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        )
    return json.loads(value) if isinstance(value, str) else value


def test_hackernews_success_identical_rerun_then_shorter_rerun(env):
    s3, replay = env
    run, tis = _run("ingest_hackernews")
    assert run.state == "success", tis
    first = _objects(s3, HN_PREFIX)
    assert sorted(first) == [
        HN_PREFIX + n for n in ("_manifest.json", *(f"part-0000{i}.json" for i in (1, 2, 3)))
    ]

    # Templating rendered the interval into the request; pagination walked page 0..2 (nbPages=3).
    requests = [r for r in replay.requests if r.path == "/api/v1/search_by_date"]
    assert [r.query["page"] for r in requests] == ["0", "1", "2"]
    assert requests[0].query["numericFilters"] == "created_at_i>=1795046400,created_at_i<1795132800"

    manifest = json.loads(first[HN_PREFIX + "_manifest.json"])
    assert manifest["interval_start"] == "2026-11-19T00:00:00+00:00"
    assert manifest["interval_end"] == "2026-11-20T00:00:00+00:00"
    assert manifest["pages"] == 3
    assert manifest["records"] > 0
    assert manifest["run_id"] == run.run_id
    # This task announces the partition itself; raw_manifest_watcher leaves such a manifest alone.
    assert manifest["announced_by"] == "ingest_hackernews.ingest_stories"

    events = _asset_events(f"s3://{BUCKET}/raw/hackernews/stories", run.run_id)
    assert len(events) == 1
    assert events[0]["partition"] == f"s3://{BUCKET}/{HN_PREFIX}"
    assert events[0]["partition_key"] == "2026-11-19"
    assert events[0]["records"] == manifest["records"]
    assert events[0]["pages"] == 3
    assert events[0]["manifest_key"] == HN_PREFIX + "_manifest.json"
    assert events[0]["interval_start"] == manifest["interval_start"]
    assert _xcom_return(run, "ingest_stories") == events[0]  # the task returns the same summary

    # Rerun of the same interval: parts byte-identical, manifest equal except run-bound fields.
    run2, _ = _run("ingest_hackernews")
    assert run2.state == "success"
    second = _objects(s3, HN_PREFIX)
    assert sorted(second) == sorted(first)
    for key in first:
        if not key.endswith("_manifest.json"):
            assert second[key] == first[key], key
    manifest2 = json.loads(second[HN_PREFIX + "_manifest.json"])
    run_bound = {"run_id", "created_at"}
    assert {k: v for k, v in manifest2.items() if k not in run_bound} == {
        k: v for k, v in manifest.items() if k not in run_bound
    }
    assert s3.list_keys(BUCKET, "raw/_staging/") == []
    assert len(_asset_events(f"s3://{BUCKET}/raw/hackernews/stories", run2.run_id)) == 1

    # The API now answers the interval with 2 pages: part-00003 of the earlier runs must go.
    replay.add_synthetic("/api/v1/search_by_date", pages=2, per_page=4, style="hackernews")
    run3, _ = _run("ingest_hackernews")
    assert run3.state == "success"
    assert sorted(_objects(s3, HN_PREFIX)) == [
        HN_PREFIX + "_manifest.json",
        HN_PREFIX + "part-00001.json",
        HN_PREFIX + "part-00002.json",
    ]
    assert read_manifest(s3.client(), BUCKET, HN_PREFIX)["records"] == 8


@pytest.mark.faults
def test_github_bearer_link_pagination_survives_429_503_and_reset(env):
    s3, replay = env
    path = "/repos/apache/airflow/issues"
    replay.inject(path, status=429, retry_after=1)
    replay.inject(path, status=503)
    replay.inject(path, reset_connection="body")
    run, tis = _run("ingest_github")
    assert run.state == "success", tis
    assert tis["ingest_issues"].try_number == 1  # handled by in-task HTTP retries, no Airflow retry
    requests = [r for r in replay.requests if r.path == path]
    assert len(requests) == 5  # three faults on page 1, then page 1 and page 2
    token = replay.token_for("github")
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in requests)
    assert requests[-1].query["page"] == "2"
    # {{ data_interval_start | ts }} rendered
    assert requests[0].query["since"] == "2026-11-19T00:00:00+00:00"
    manifest = read_manifest(s3.client(), BUCKET, GH_PREFIX)
    assert manifest is not None
    assert manifest["pages"] == 2
    events = _asset_events(f"s3://{BUCKET}/raw/github/issues")
    assert events
    assert events[-1]["records"] == manifest["records"]


@pytest.mark.faults
def test_bad_page_fails_task_and_keeps_previous_partition(env):
    s3, replay = env
    ok, _ = _run("ingest_hackernews")
    assert ok.state == "success"
    before = _objects(s3, HN_PREFIX)
    events_before = len(_asset_events(f"s3://{BUCKET}/raw/hackernews/stories"))

    # Page 1 of every attempt lacks a required field: all task tries fail validation.
    replay.add_route(
        "GET",
        "/api/v1/search_by_date",
        {"hits": [{"objectID": "1", "created_at_i": 1795046400}], "page": 1, "nbPages": 3},
        match={"page": "1"},
    )
    failed, tis = _run("ingest_hackernews")
    assert failed.state == "failed"
    assert tis["ingest_stories"].state == "failed"
    assert tis["ingest_stories"].try_number == 1 + FAST_RETRIES["task"]["retries"]
    assert _objects(s3, HN_PREFIX) == before  # previous partition untouched, byte for byte
    assert s3.list_keys(BUCKET, "raw/_staging/") == []
    assert len(_asset_events(f"s3://{BUCKET}/raw/hackernews/stories")) == events_before


def test_a_missing_connection_fails_the_task_at_once_without_retries(env, monkeypatch):
    s3, replay = env
    monkeypatch.delenv("AIRFLOW_CONN_HTTP_HACKERNEWS")
    run, tis = _run("ingest_hackernews")
    assert run.state == "failed"
    assert tis["ingest_stories"].state == "failed"
    assert tis["ingest_stories"].try_number == 1  # no retry: FAST_RETRIES allows 2, none were spent
    assert [r for r in replay.requests if r.path == "/api/v1/search_by_date"] == []
    assert s3.list_keys(BUCKET, HN_PREFIX) == []


def test_the_missing_connection_message_names_it_and_how_to_create_it(airflow_db, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from airbricks.ingestion.operators import HttpToS3RawOperator

    monkeypatch.delenv("AIRFLOW_CONN_HTTP_BOOKS", raising=False)
    task = HttpToS3RawOperator(task_id="ingest_items", source="books", dataset="items", path="/items")
    with pytest.raises(AirflowFailException) as info:
        task._endpoint()
    message = str(info.value)
    assert "books: Airflow connection 'http_books' does not exist (failing without retries" in message
    assert "airflow connections add http_books --conn-type http --conn-host <api host>" in message
    assert 'AIRFLOW_CONN_HTTP_BOOKS=\'{"conn_type": "http", "host": "<api host>"}\'' in message


def test_a_connection_without_host_fails_at_once(airflow_db, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from airbricks.ingestion.operators import HttpToS3RawOperator

    monkeypatch.setenv("AIRFLOW_CONN_HTTP_BOOKS", json.dumps({"conn_type": "http"}))
    task = HttpToS3RawOperator(task_id="ingest_items", source="books", dataset="items", path="/items")
    with pytest.raises(AirflowFailException, match="connection 'http_books' has no host"):
        task._endpoint()
