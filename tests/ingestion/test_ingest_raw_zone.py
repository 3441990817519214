"""Raw-zone key layout, manifest content and the publish protocol, against the real moto S3 server."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from airbricks.ingestion.raw_zone import Partition, PartitionError, RawZoneWriter, read_manifest

UTC = datetime.UTC
BUCKET = "raw-zone-test"


def _day(start_day: int = 19) -> Partition:
    return Partition(
        BUCKET,
        "src",
        "ds",
        datetime.datetime(2026, 11, start_day, tzinfo=UTC),
        datetime.datetime(2026, 11, start_day + 1, tzinfo=UTC),
    )


def test_daily_key_layout():
    partition = _day()
    assert partition.prefix == "raw/src/ds/dt=2026-11-19/"
    assert partition.part_key(1) == "raw/src/ds/dt=2026-11-19/part-00001.json"
    assert partition.part_key(12345) == "raw/src/ds/dt=2026-11-19/part-12345.json"
    assert partition.manifest_key == "raw/src/ds/dt=2026-11-19/_manifest.json"
    assert partition.uri == f"s3://{BUCKET}/raw/src/ds/dt=2026-11-19/"
    staging = partition.staging_prefix("manual__2026-11-20T00:00:00+00:00")
    assert staging.startswith("raw/_staging/src/ds/dt=2026-11-19/")
    assert len(staging.split("/")[-2]) == 16
    assert staging != partition.staging_prefix("scheduled__2026-11-20T00:00:00+00:00")


def test_hourly_layout_and_utc_dates():
    cet = datetime.timezone(datetime.timedelta(hours=1))
    partition = Partition(
        BUCKET,
        "src",
        "ds",
        datetime.datetime(2026, 11, 20, 0, tzinfo=cet),
        datetime.datetime(2026, 11, 20, 1, tzinfo=cet),
    )
    assert partition.prefix == "raw/src/ds/dt=2026-11-19/hr=23/"


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        (
            datetime.datetime(2026, 11, 19, tzinfo=UTC),
            datetime.datetime(2026, 11, 19, tzinfo=UTC),
            "empty data interval",
        ),
        (
            datetime.datetime(2026, 11, 19, 0, 0, tzinfo=UTC),
            datetime.datetime(2026, 11, 19, 0, 30, tzinfo=UTC),
            "sub-daily",
        ),
        (
            datetime.datetime(2026, 11, 19, 0, 30, tzinfo=UTC),
            datetime.datetime(2026, 11, 19, 2, 30, tzinfo=UTC),
            "on the hour",
        ),
        (datetime.datetime(2026, 11, 19), datetime.datetime(2026, 11, 20), "timezone-aware"),
    ],
)
def test_intervals_without_a_partition_are_refused(start, end, match):
    with pytest.raises(PartitionError, match=match):
        Partition(BUCKET, "src", "ds", start, end)


@pytest.fixture
def s3(s3_server):
    s3_server.reset()
    s3_server.create_bucket(BUCKET)
    return s3_server


def _stage(writer: RawZoneWriter, bodies: list[bytes]) -> None:
    writer.begin()
    for number, body in enumerate(bodies, start=1):
        writer.stage(number, body, records=len(json.loads(body)), url=f"http://api/x?page={number}")


@pytest.mark.integration
def test_publish_writes_byte_exact_parts_and_manifest_last(s3):
    client = s3.client()
    bodies = [b'[{"id": 1},\n {"id": 2}]', b'[ {"id":3} ]']
    writer = RawZoneWriter(client, _day(), "run-1")
    _stage(writer, bodies)
    assert read_manifest(client, BUCKET, _day().prefix) is None  # staged only: nothing trusted yet
    manifest = writer.publish()
    keys = s3.list_keys(BUCKET)
    assert keys == [
        "raw/src/ds/dt=2026-11-19/_manifest.json",
        "raw/src/ds/dt=2026-11-19/part-00001.json",
        "raw/src/ds/dt=2026-11-19/part-00002.json",
    ]  # staging is gone
    for number, body in enumerate(bodies, start=1):
        assert client.get_object(Bucket=BUCKET, Key=_day().part_key(number))["Body"].read() == body
    stored = read_manifest(client, BUCKET, _day().prefix)
    assert stored == manifest
    assert stored["source"] == "src"
    assert stored["dataset"] == "ds"
    assert stored["interval_start"] == "2026-11-19T00:00:00+00:00"
    assert stored["interval_end"] == "2026-11-20T00:00:00+00:00"
    assert stored["run_id"] == "run-1"
    assert stored["pages"] == 2
    assert stored["records"] == 3
    assert stored["bytes"] == sum(len(b) for b in bodies)
    assert [p["sha256"] for p in stored["parts"]] == [hashlib.sha256(b).hexdigest() for b in bodies]
    assert [p["bytes"] for p in stored["parts"]] == [len(b) for b in bodies]
    assert [p["records"] for p in stored["parts"]] == [2, 1]
    assert [p["key"] for p in stored["parts"]] == [_day().part_key(1), _day().part_key(2)]
    assert datetime.datetime.fromisoformat(stored["created_at"]).tzinfo is not None


@pytest.mark.integration
def test_shorter_republish_removes_stale_parts(s3):
    client = s3.client()
    first = RawZoneWriter(client, _day(), "run-1")
    _stage(first, [b"[1]", b"[2]", b"[3]"])
    first.publish()
    client.put_object(Bucket=BUCKET, Key=_day().prefix + "stray.tmp", Body=b"x")
    hourly = _day().prefix + "hr=05/part-00001.json"  # another layout's sub-partition: not ours to delete
    client.put_object(Bucket=BUCKET, Key=hourly, Body=b"[0]")
    second = RawZoneWriter(client, _day(), "run-2")
    _stage(second, [b"[9]"])
    second.publish()
    assert s3.list_keys(BUCKET, _day().prefix) == [_day().manifest_key, hourly, _day().part_key(1)]
    assert read_manifest(client, BUCKET, _day().prefix)["pages"] == 1


@pytest.mark.integration
def test_abort_keeps_published_partition_and_other_intervals(s3):
    client = s3.client()
    published = RawZoneWriter(client, _day(), "run-1")
    _stage(published, [b"[1]"])
    published.publish()
    other = RawZoneWriter(client, _day(20), "run-x")
    _stage(other, [b"[7]"])
    other.publish()
    before = {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in s3.list_keys(BUCKET)}

    failing = RawZoneWriter(client, _day(), "run-2")
    _stage(failing, [b"[5]", b"[6]"])
    failing.abort()
    after = {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in s3.list_keys(BUCKET)}
    assert after == before


@pytest.mark.integration
def test_begin_clears_leftovers_of_a_crashed_attempt_of_the_same_run(s3):
    client = s3.client()
    crashed = RawZoneWriter(client, _day(), "run-1")
    _stage(crashed, [b"[1]", b"[2]", b"[3]"])
    crashed.flush()  # the process died here, its uploads landed: no abort
    retry = RawZoneWriter(client, _day(), "run-1")
    _stage(retry, [b"[1]"])
    retry.flush()
    assert s3.list_keys(BUCKET, retry.staging) == [retry.staging + "part-00001.json"]
    retry.publish()
    assert s3.list_keys(BUCKET, "raw/_staging/") == []
