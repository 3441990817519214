"""Raw-zone key layout, manifest content and the publish protocol, against the real moto S3 server."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from airbricks.ingestion.raw_zone import RawZoneWriter, part_key, read_manifest, staging_prefix
from airbricks.partitions import RawPartition

UTC = datetime.UTC
BUCKET = "raw-zone-test"


def _day(start_day: int = 19) -> RawPartition:
    return RawPartition("src", "ds", datetime.datetime(2026, 11, start_day, tzinfo=UTC))


def test_part_and_staging_keys_are_under_the_partition():
    partition = _day()
    assert part_key(partition, 1) == "raw/src/ds/dt=2026-11-19/part-00001.json"
    assert part_key(partition, 12345) == "raw/src/ds/dt=2026-11-19/part-12345.json"
    staging = staging_prefix(partition, "manual__2026-11-20T00:00:00+00:00")
    assert staging.startswith("raw/_staging/src/ds/dt=2026-11-19/")
    assert len(staging.split("/")[-2]) == 16
    assert staging != staging_prefix(partition, "scheduled__2026-11-20T00:00:00+00:00")
    hour = RawPartition("src", "ds", datetime.datetime(2026, 11, 19, 23, tzinfo=UTC), "hour")
    assert part_key(hour, 1) == "raw/src/ds/dt=2026-11-19/hr=23/part-00001.json"
    assert staging_prefix(hour, "r").startswith("raw/_staging/src/ds/dt=2026-11-19/hr=23/")


@pytest.fixture
def s3(s3_server):
    s3_server.reset()
    s3_server.create_bucket(BUCKET)
    return s3_server


def _stage(writer: RawZoneWriter, bodies: list[bytes]) -> None:
    writer.begin()
    for number, body in enumerate(bodies, start=1):
        writer.stage(number, body, records=len(json.loads(body)), url=f"http://api/x?page={number}")


def _publish(client, run_id: str, bodies: list[bytes]) -> dict:
    """A whole run of ``_day()``: begin, stage every page, publish; returns the manifest."""
    writer = RawZoneWriter(client, BUCKET, _day(), run_id)
    _stage(writer, bodies)
    return writer.publish()


@pytest.mark.integration
def test_publish_writes_byte_exact_parts_and_manifest_last(s3):
    client = s3.client()
    bodies = [b'[{"id": 1},\n {"id": 2}]', b'[ {"id":3} ]']
    writer = RawZoneWriter(client, BUCKET, _day(), "run-1")
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
        assert client.get_object(Bucket=BUCKET, Key=part_key(_day(), number))["Body"].read() == body
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
    assert [p["key"] for p in stored["parts"]] == [part_key(_day(), 1), part_key(_day(), 2)]
    assert datetime.datetime.fromisoformat(stored["created_at"]).tzinfo is not None


@pytest.mark.integration
def test_shorter_republish_removes_stale_parts(s3):
    client = s3.client()
    _publish(client, "run-1", [b"[1]", b"[2]", b"[3]"])
    client.put_object(Bucket=BUCKET, Key=_day().prefix + "stray.tmp", Body=b"x")
    hourly = _day().prefix + "hr=05/part-00001.json"  # another layout's sub-partition: not ours to delete
    client.put_object(Bucket=BUCKET, Key=hourly, Body=b"[0]")
    _publish(client, "run-2", [b"[9]"])
    assert s3.list_keys(BUCKET, _day().prefix) == [_day().manifest_key, hourly, part_key(_day(), 1)]
    assert read_manifest(client, BUCKET, _day().prefix)["pages"] == 1


@pytest.mark.integration
def test_abort_keeps_published_partition_and_other_intervals(s3):
    client = s3.client()
    _publish(client, "run-1", [b"[1]"])
    other = RawZoneWriter(client, BUCKET, _day(20), "run-x")
    _stage(other, [b"[7]"])
    other.publish()
    before = {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in s3.list_keys(BUCKET)}

    failing = RawZoneWriter(client, BUCKET, _day(), "run-2")
    _stage(failing, [b"[5]", b"[6]"])
    failing.abort()
    after = {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in s3.list_keys(BUCKET)}
    assert after == before


@pytest.mark.integration
def test_begin_clears_leftovers_of_a_crashed_attempt_of_the_same_run(s3):
    client = s3.client()
    _publish(client, "run-0", [b"[0]"])
    crashed = RawZoneWriter(client, BUCKET, _day(), "run-1")
    _stage(crashed, [b"[1]", b"[2]", b"[3]"])
    crashed.flush()  # the process died here, its uploads landed: no abort
    assert crashed.mode == "staged"
    retry = RawZoneWriter(client, BUCKET, _day(), "run-1")
    _stage(retry, [b"[1]"])
    retry.flush()
    assert s3.list_keys(BUCKET, retry.staging) == [retry.staging + "part-00001.json"]
    retry.publish()
    assert s3.list_keys(BUCKET, "raw/_staging/") == []


class S3Calls:
    """Every S3 operation a real boto3 client sends (recorded by a botocore event hook), with its key."""

    def __init__(self, client) -> None:
        self.calls: list[tuple[str, str]] = []
        client.meta.events.register("provide-client-params.s3", self._record)

    def _record(self, params, model, **_):
        self.calls.append((model.name, params.get("Key", "")))

    def keys(self, operation: str) -> list[str]:
        return [key for name, key in self.calls if name == operation]

    def clear(self) -> None:
        self.calls.clear()


@pytest.mark.integration
def test_first_publication_writes_final_keys_directly(s3):
    client = s3.client()
    calls = S3Calls(client)
    writer = RawZoneWriter(client, BUCKET, _day(), "run-1")
    _stage(writer, [b"[1]", b"[2]"])
    assert writer.mode == "direct"
    writer.publish()
    assert calls.keys("PutObject") == [part_key(_day(), 1), part_key(_day(), 2), _day().manifest_key]
    assert calls.keys("CopyObject") == []
    assert not [key for _, key in calls.calls if key.startswith("raw/_staging/")]
    assert s3.list_keys(BUCKET) == [_day().manifest_key, part_key(_day(), 1), part_key(_day(), 2)]
    assert read_manifest(client, BUCKET, _day().prefix)["pages"] == 2


@pytest.mark.integration
def test_republication_stages_then_copies(s3):
    client = s3.client()
    _publish(client, "run-1", [b"[1]", b"[2]"])
    calls = S3Calls(client)
    second = RawZoneWriter(client, BUCKET, _day(), "run-2")
    _stage(second, [b"[3]", b"[4]"])
    assert second.mode == "staged"
    second.flush()
    staged = [second.staging + "part-00001.json", second.staging + "part-00002.json"]
    assert calls.keys("PutObject") == staged
    assert s3.list_keys(BUCKET, "raw/_staging/") == staged
    # Until publish, readers still see the first run, byte for byte.
    assert read_manifest(client, BUCKET, _day().prefix)["run_id"] == "run-1"
    assert client.get_object(Bucket=BUCKET, Key=part_key(_day(), 1))["Body"].read() == b"[1]"
    second.publish()
    assert sorted(calls.keys("CopyObject")) == [part_key(_day(), 1), part_key(_day(), 2)]
    assert s3.list_keys(BUCKET) == [_day().manifest_key, part_key(_day(), 1), part_key(_day(), 2)]
    assert read_manifest(client, BUCKET, _day().prefix)["run_id"] == "run-2"
    assert client.get_object(Bucket=BUCKET, Key=part_key(_day(), 2))["Body"].read() == b"[4]"


@pytest.mark.integration
def test_failed_first_publication_leaves_no_manifest_and_no_parts(s3):
    client = s3.client()
    stranger = _day().prefix + "hr=05/part-00001.json"  # a sub-partition: not this run's to delete
    client.put_object(Bucket=BUCKET, Key=stranger, Body=b"[0]")
    writer = RawZoneWriter(client, BUCKET, _day(), "run-1")
    _stage(writer, [b"[1]", b"[2]", b"[3]"])
    writer.flush()
    assert len(s3.list_keys(BUCKET, _day().prefix)) == 4  # direct: the parts are at their final keys
    writer.abort()  # e.g. page 4 failed validation
    assert s3.list_keys(BUCKET) == [stranger]
    assert read_manifest(client, BUCKET, _day().prefix) is None


@pytest.mark.integration
def test_failed_first_publication_at_the_manifest_cleans_up(s3):
    client = s3.client()
    writer = RawZoneWriter(client, BUCKET, _day(), "run-1")
    _stage(writer, [b"[1]", b"[2]"])

    def refuse_manifest(params, **_):
        if params.get("Key") == _day().manifest_key:
            raise ConnectionError("S3 went away")

    client.meta.events.register("provide-client-params.s3.PutObject", refuse_manifest)
    with pytest.raises(ConnectionError):
        writer.publish()
    writer.abort()
    assert s3.list_keys(BUCKET) == []


@pytest.mark.integration
def test_direct_abort_leaves_a_manifest_published_meanwhile_alone(s3):
    client = s3.client()
    slow = RawZoneWriter(client, BUCKET, _day(), "run-slow")
    _stage(slow, [b"[1]", b"[2]"])
    assert slow.mode == "direct"
    _publish(client, "run-fast", [b"[9]"])  # a second run of the same interval, also direct
    with pytest.raises(RuntimeError, match="published by another run"):
        slow.publish()  # never overwrites the manifest that appeared since begin()
    slow.abort()
    assert read_manifest(client, BUCKET, _day().prefix)["run_id"] == "run-fast"
    assert part_key(_day(), 1) in s3.list_keys(BUCKET)


@pytest.mark.integration
def test_failed_republication_keeps_old_manifest_and_parts(s3):
    client = s3.client()
    _publish(client, "run-1", [b"[1]", b"[2]"])
    before = {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in s3.list_keys(BUCKET)}

    second = RawZoneWriter(client, BUCKET, _day(), "run-2")
    _stage(second, [b"[5]", b"[6]", b"[7]"])
    second.flush()
    second.abort()
    after = {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in s3.list_keys(BUCKET)}
    assert after == before


@pytest.mark.integration
@pytest.mark.parametrize("republish", [False, True], ids=["direct", "staged"])
def test_stale_direct_children_are_removed_in_both_modes(s3, republish):
    client = s3.client()
    if republish:
        _publish(client, "run-1", [b"[1]", b"[2]", b"[3]"])
    else:  # an earlier run died after writing three parts directly, before its manifest
        for number in (1, 2, 3):
            client.put_object(Bucket=BUCKET, Key=part_key(_day(), number), Body=b"[0]")
    hourly = _day().prefix + "hr=05/part-00001.json"
    client.put_object(Bucket=BUCKET, Key=hourly, Body=b"[0]")
    writer = RawZoneWriter(client, BUCKET, _day(), "run-2")
    _stage(writer, [b"[9]"])
    assert writer.mode == ("staged" if republish else "direct")
    writer.publish()
    assert s3.list_keys(BUCKET, _day().prefix) == [_day().manifest_key, hourly, part_key(_day(), 1)]
    assert client.get_object(Bucket=BUCKET, Key=part_key(_day(), 1))["Body"].read() == b"[9]"
    assert read_manifest(client, BUCKET, _day().prefix)["pages"] == 1
    assert s3.list_keys(BUCKET, "raw/_staging/") == []


@pytest.mark.integration
@pytest.mark.parametrize(("byte_budget", "expected_peak"), [(10, 1), (1000, 4)])
def test_uploads_in_flight_are_bounded_by_count_and_bytes(s3, monkeypatch, byte_budget, expected_peak):
    import threading
    import time

    from airbricks.ingestion import raw_zone

    monkeypatch.setattr(raw_zone, "MAX_IN_FLIGHT_BYTES", byte_budget)
    client = s3.client()
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def started(**_):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)  # a slow S3: without the bounds every page would be in flight at once

    def finished(**_):
        with lock:
            state["now"] -= 1

    client.meta.events.register("before-call.s3.PutObject", started)
    client.meta.events.register("after-call.s3.PutObject", finished)
    writer = RawZoneWriter(client, BUCKET, _day(), "run-1")
    _stage(writer, [b"[%d,%d,%d]" % (n, n, n) for n in range(10)])  # 7-byte pages
    writer.flush()
    assert state["peak"] == expected_peak  # 10 bytes hold one page; 1000 bytes: UPLOAD_CONCURRENCY (4)
