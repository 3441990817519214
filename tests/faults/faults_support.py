"""Helpers of the fault-injection suite: constants, records accounting against the source, DAG runs."""

from __future__ import annotations

import datetime
import hashlib
import json
import pathlib
from collections import Counter
from typing import Any

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "airbricks" / "local" / "fixtures"
BUCKET = "airbricks-raw"

# Small waits everywhere so that a fault costs seconds, not minutes; same semantics as production values.
FAST_OVERRIDES = {
    "task": {"retries": 2, "retry_delay_seconds": 0.2, "max_retry_delay_seconds": 1},
    "http": {
        "max_attempts": 8,
        "backoff_initial_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "connect_timeout_seconds": 2,
        "read_timeout_seconds": 1,
        "retry_after_max_seconds": 5,
    },
}
MAX_WAIT_SECONDS = "2"  # caps backoff and Retry-After (a 1 s Retry-After is still honoured in full)
# How each source's records are identified (its fixtures are the truth the raw zone is checked against).
RECORD_SHAPE = {"hackernews": ("hits", "objectID"), "github": ("$", "id")}


# ---- records accounting ------------------------------------------------------------------------------
def source_records(source: str) -> Counter[str]:
    """Record ids of every page the replay server holds for ``source`` (the bundled fixtures)."""
    spec = json.loads((FIXTURES / source / "source.json").read_text())
    records_path, id_field = RECORD_SHAPE[source]
    ids: Counter[str] = Counter()
    for exchange in spec["exchanges"]:
        document = json.loads((FIXTURES / source / exchange["body_file"]).read_bytes())
        ids.update(str(r[id_field]) for r in _records(document, records_path))
    return ids


def _records(document: Any, records_path: str) -> list[dict[str, Any]]:
    return document if records_path == "$" else document[records_path]


def published_records(s3_client: Any, source: str, prefix: str) -> tuple[Counter[str] | None, list[str]]:
    """What a reader of the raw zone sees: record ids of the parts the manifest lists (sha256 checked),
    or None when there is no manifest; plus keys in the partition the manifest does not list."""

    from airbricks.ingestion.raw_zone import read_manifest

    manifest = read_manifest(s3_client, BUCKET, prefix)
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    keys = {o["Key"] for o in listed}
    if manifest is None:
        return None, sorted(keys)
    records_path, id_field = RECORD_SHAPE[source]
    ids: Counter[str] = Counter()
    for part in manifest["parts"]:
        body = s3_client.get_object(Bucket=BUCKET, Key=part["key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == part["sha256"], f"{part['key']}: sha256 differs"
        ids.update(str(r[id_field]) for r in _records(json.loads(body), records_path))
    unlisted = sorted(keys - {p["key"] for p in manifest["parts"]} - {prefix + "_manifest.json"})
    return ids, unlisted


def lost_and_duplicated(expected: Counter[str], published: Counter[str] | None) -> tuple[int, int]:
    """(records of ``expected`` missing from ``published``, extra copies in ``published``)."""
    got = published or Counter()
    return sum((expected - got).values()), sum((got - expected).values())


# ---- real Airflow runs ----------------------------------------------------------------------------
DAGS_DIR = REPO_ROOT / "dags"  # one DAG per file, named after its dag_id
LOGICAL_DATE = datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC)  # interval 2026-11-19 .. 2026-11-20


def partition_prefix(source: str, dataset: str, day: str = "2026-11-19") -> str:
    return f"raw/{source}/{dataset}/dt={day}/"


def run_dag(dag_id: str, logical_date: datetime.datetime = LOGICAL_DATE) -> tuple[Any, dict[str, Any]]:
    """``dag.test()`` of a real DAG of ``dags/`` (parsed now, so env overrides apply); (run, {task: ti})."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=DAGS_DIR / f"{dag_id}.py")
    assert not bag.import_errors, bag.import_errors
    run = bag.get_dag(dag_id).test(logical_date=logical_date)
    return run, {ti.task_id: ti for ti in run.get_task_instances()}


def asset_events(uri: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        ).all()
    return [row[0] for row in rows]
