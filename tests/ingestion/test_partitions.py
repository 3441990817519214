"""airbricks.partitions: the one raw-partition contract (layout, keys, URIs, extras, job parameters)."""

from __future__ import annotations

import datetime
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airbricks.partitions import (
    DEFAULT_RAW_BUCKET,
    KEY_FORMATS,
    PartitionError,
    RawPartition,
    dataset_uri,
    raw_bucket,
)

UTC = datetime.UTC
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
STARTS = st.datetimes(
    min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(9998, 12, 31), timezones=st.just(UTC)
)


@st.composite
def partitions(draw: st.DrawFn) -> RawPartition:
    grain = draw(st.sampled_from(["day", "hour"]))
    start = draw(STARTS).replace(minute=0, second=0, microsecond=0)
    if grain == "day":
        start = start.replace(hour=0)
    return RawPartition(draw(NAMES), draw(NAMES), start, grain)


def test_daily_layout():
    day = RawPartition.for_interval(
        "hackernews",
        "stories",
        datetime.datetime(2026, 11, 19, tzinfo=UTC),
        datetime.datetime(2026, 11, 20, tzinfo=UTC),
    )
    assert (day.grain, day.key, day.hour, day.date) == (
        "day",
        "2026-11-19",
        None,
        datetime.date(2026, 11, 19),
    )
    assert day.relative_prefix == "dt=2026-11-19/"
    assert day.prefix == "raw/hackernews/stories/dt=2026-11-19/"
    assert day.manifest_key == "raw/hackernews/stories/dt=2026-11-19/_manifest.json"
    assert day.uri("b") == "s3://b/raw/hackernews/stories/dt=2026-11-19/"
    assert day.asset_uri("b") == dataset_uri("b", "hackernews", "stories") == "s3://b/raw/hackernews/stories"
    assert day.end == datetime.datetime(2026, 11, 20, tzinfo=UTC)
    assert day.to_extra("b") == {
        "source": "hackernews",
        "dataset": "stories",
        "partition_key": "2026-11-19",
        "grain": "day",
        "partition": "s3://b/raw/hackernews/stories/dt=2026-11-19/",
        "interval_start": "2026-11-19T00:00:00+00:00",
        "interval_end": "2026-11-20T00:00:00+00:00",
    }
    assert day.job_parameters("b") == {
        "partition_path": "s3://b/raw/hackernews/stories/dt=2026-11-19/",
        "partition_key": "2026-11-19",
        "partition_date": "2026-11-19",
        "partition_folder": "dt=2026-11-19/",
        "interval_start": "2026-11-19T00:00:00+00:00",
        "interval_end": "2026-11-20T00:00:00+00:00",
    }


def test_hourly_layout_in_utc():
    cet = datetime.timezone(datetime.timedelta(hours=1))
    hour = RawPartition.for_interval(
        "src",
        "ds",
        datetime.datetime(2026, 11, 20, 0, tzinfo=cet),
        datetime.datetime(2026, 11, 20, 1, tzinfo=cet),
    )
    assert (hour.grain, hour.key, hour.hour) == ("hour", "2026-11-19T23", 23)
    assert hour.start == datetime.datetime(2026, 11, 19, 23, tzinfo=UTC)
    assert hour.start.tzinfo is UTC
    assert hour.prefix == "raw/src/ds/dt=2026-11-19/hr=23/"
    assert hour.job_parameters("b")["partition_folder"] == "dt=2026-11-19/hr=23/"
    assert hour.job_parameters("b")["partition_date"] == "2026-11-19"


def test_airflow_pendulum_intervals_keep_their_utc_offset():
    # Airflow hands data intervals over as pendulum DateTimes; the extra and job parameters must still be
    # offset-aware ISO 8601 (pendulum + timedelta under a stdlib UTC tzinfo drops the offset).
    import pendulum

    day = RawPartition.for_interval(
        "s", "d", pendulum.datetime(2026, 11, 19, tz="UTC"), pendulum.datetime(2026, 11, 20, tz="UTC")
    )
    assert type(day.start) is datetime.datetime
    assert day.to_extra("b")["interval_end"] == "2026-11-20T00:00:00+00:00"


def test_keys_are_airflows_temporal_mapper_formats():
    # The key formats of Airflow's own StartOfDayMapper / StartOfHourMapper, so partition keys that
    # Airflow derives and the ones this module writes are the same strings.
    from airflow.partition_mappers.temporal import StartOfDayMapper, StartOfHourMapper

    assert {
        "day": StartOfDayMapper.default_output_format,
        "hour": StartOfHourMapper.default_output_format,
    } == KEY_FORMATS
    assert (
        StartOfHourMapper().to_downstream("2026-11-19T05:00:00")
        == RawPartition.from_key("a", "b", "2026-11-19T05").key
    )
    assert (
        StartOfDayMapper().to_downstream("2026-11-19T05:00:00")
        == RawPartition.from_key("a", "b", "2026-11-19").key
    )


@given(partitions(), st.from_regex(r"[a-z0-9][a-z0-9.-]{2,20}", fullmatch=True))
def test_round_trips(partition, bucket):
    assert RawPartition.from_key(partition.source, partition.dataset, partition.key) == partition
    assert RawPartition.from_prefix(partition.prefix) == partition
    assert RawPartition.from_prefix(partition.prefix.rstrip("/")) == partition
    assert RawPartition.from_uri(partition.uri(bucket), bucket=bucket) == partition
    assert RawPartition.from_extra(partition.to_extra(bucket)) == partition
    assert RawPartition.from_extra({"partition": partition.uri(bucket)}) == partition
    assert (
        RawPartition.for_interval(partition.source, partition.dataset, partition.start, partition.end)
        == partition
    )
    assert partition.key == partition.start.strftime(KEY_FORMATS[partition.grain])


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
            r"sub-daily data interval 2026-11-19T00:00:00\+00:00 \.\. 2026-11-19T00:30:00\+00:00",
        ),
        (
            datetime.datetime(2026, 11, 19, tzinfo=UTC),
            datetime.datetime(2026, 11, 19, 2, tzinfo=UTC),
            "sub-daily",
        ),
        (
            datetime.datetime(2026, 11, 19, tzinfo=UTC),
            datetime.datetime(2026, 11, 26, tzinfo=UTC),
            "longer-than-daily",
        ),
        (
            datetime.datetime(2026, 11, 19, 0, 30, tzinfo=UTC),
            datetime.datetime(2026, 11, 19, 1, 30, tzinfo=UTC),
            "whole UTC hour, not 2026-11-19T00:30:00",
        ),
        (
            datetime.datetime(2026, 11, 19, 6, tzinfo=UTC),
            datetime.datetime(2026, 11, 20, 6, tzinfo=UTC),
            "UTC midnight, not 2026-11-19T06:00:00",
        ),
        (
            datetime.datetime(2026, 11, 19),
            datetime.datetime(2026, 11, 20),
            "start datetime.datetime.*timezone-aware",
        ),
    ],
)
def test_intervals_without_a_partition_are_refused(start, end, match):
    with pytest.raises(PartitionError, match=match):
        RawPartition.for_interval("src", "ds", start, end)


@pytest.mark.parametrize(
    ("parse", "match"),
    [
        (lambda: RawPartition.from_key("s", "d", "2026-11-19T5"), "'2026-11-19T5'"),
        (lambda: RawPartition.from_key("s", "d", "2026-1-19"), "'2026-1-19'"),
        (lambda: RawPartition.from_key("s", "d", "2026-02-30"), "'2026-02-30'.*not a real date"),
        (lambda: RawPartition.from_key("s", "d", "2026-11-19T24"), "'2026-11-19T24'.*not a real date"),
        (lambda: RawPartition.from_key("S", "d", "2026-11-19"), "source 'S'"),
        (lambda: RawPartition.from_prefix("raw/s/d/2026-11-19/"), "'raw/s/d/2026-11-19/'"),
        (lambda: RawPartition.from_prefix("raw/s/d/dt=2026-11-19/hr=5/"), "'raw/s/d/dt=2026-11-19/hr=5/'"),
        (lambda: RawPartition.from_prefix("raw/s/d/dt=2026-11-19/_manifest.json"), "_manifest.json"),
        (lambda: RawPartition.from_uri("/local/dt=2026-11-20/"), "'/local/dt=2026-11-20/'"),
        (lambda: RawPartition.from_uri("s3://b/raw/s/dt=2026-11-20/"), "'s3://b/raw/s/dt=2026-11-20/'"),
        (
            lambda: RawPartition.from_uri("s3://b/raw/s/d/dt=2026-11-20/", bucket="raw"),
            "not in the raw bucket 'raw'",
        ),
        (
            lambda: RawPartition.from_extra({"records": 3}),
            r"neither 'partition_key' nor 'partition'.*records",
        ),
        (lambda: RawPartition.from_extra({"partition_key": "2026-11-19", "source": "s"}), "no dataset"),
        (
            lambda: RawPartition.from_extra(
                {
                    "partition_key": "2026-11-19",
                    "source": "s",
                    "dataset": "d",
                    "partition": "s3://b/raw/s/d/dt=2026-11-18/",
                }
            ),
            "two partitions",
        ),
        (lambda: RawPartition.from_extra(None), "extra None is not a mapping"),
        (lambda: RawPartition("s", "d", datetime.datetime(2026, 11, 19, tzinfo=UTC), "week"), "grain 'week'"),
    ],
)
def test_parse_errors_name_the_offending_value(parse, match):
    with pytest.raises(PartitionError, match=match):
        parse()


def test_one_raw_bucket_default(monkeypatch):
    monkeypatch.delenv("AIRBRICKS_RAW_BUCKET", raising=False)
    assert raw_bucket() == DEFAULT_RAW_BUCKET == "airbricks-raw"
    monkeypatch.setenv("AIRBRICKS_RAW_BUCKET", " other ")
    assert raw_bucket() == "other"


def test_imports_only_the_standard_library():
    code = (
        "import sys, airbricks.partitions; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'airflow', 'pydantic', 'yaml', 'boto3'}))"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "[]"
