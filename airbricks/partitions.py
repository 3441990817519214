"""The raw-zone partition contract: one typed partition shared by ingestion, processing and the bundle.

A raw partition is one UTC day or one UTC hour of one dataset::

    s3://<bucket>/raw/<source>/<dataset>/dt=YYYY-MM-DD/          grain "day",  key "YYYY-MM-DD"
    s3://<bucket>/raw/<source>/<dataset>/dt=YYYY-MM-DD/hr=HH/    grain "hour", key "YYYY-MM-DDTHH"
                                         .../_manifest.json      written last by ingestion

The key is the Airflow partition key of the interval: the formats are those of Airflow 3.3's
``StartOfDayMapper`` / ``StartOfHourMapper`` (:data:`KEY_FORMATS`; pass one as ``key_format`` to
``CronPartitionTimetable``). The dataset's asset is ``s3://<bucket>/raw/<source>/<dataset>``
(:func:`dataset_uri`), one event per published partition. This module imports nothing beyond the standard
library (the DAG processor preloads it, and the Databricks bundle never imports it: Airflow passes it the
already-parsed values, see :meth:`RawPartition.job_parameters`).

Interface::

    raw_bucket() -> str                      # $AIRBRICKS_RAW_BUCKET or "airbricks-raw": the ONE default
    dataset_uri(bucket, source, dataset) -> "s3://<bucket>/raw/<source>/<dataset>"  (the asset URI)
    PartitionError(ValueError)               # every refusal; the message names the offending value

    RawPartition(source, dataset, start, grain="day")   # frozen; start aware, aligned; stored in UTC
    RawPartition.for_interval(source, dataset, start, end)  # a data interval of exactly 1 UTC day / hour
    RawPartition.from_key(source, dataset, key)          # "2026-11-19" / "2026-11-19T05"
    RawPartition.from_prefix(prefix)                     # "raw/<source>/<dataset>/dt=.../[hr=../]"
    RawPartition.from_uri(uri, bucket=None)              # "s3://<bucket>/" + prefix (bucket checked if given)
    RawPartition.from_extra(extra)                       # an asset-event extra (to_extra, or "partition")
    p.key  p.grain  p.start  p.end  p.date  p.hour (None for "day")
    p.relative_prefix  # "dt=YYYY-MM-DD/[hr=HH/]"
    p.prefix           # "raw/<source>/<dataset>/" + relative_prefix
    p.manifest_key     # prefix + "_manifest.json"
    p.uri(bucket)      # "s3://<bucket>/" + prefix
    p.asset_uri(bucket)                                  # dataset_uri(bucket, p.source, p.dataset)
    p.to_extra(bucket) -> {"source", "dataset", "partition_key", "grain", "partition" (the URI),
                           "interval_start", "interval_end"}   (ISO 8601, UTC)
    p.job_parameters(bucket) -> {"partition_path" (the URI), "partition_key", "partition_date",
                                 "partition_folder" (relative_prefix), "interval_start", "interval_end"}
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

Grain = Literal["day", "hour"]
GRAINS: tuple[Grain, ...] = get_args(Grain)

RAW_BUCKET_ENV = "AIRBRICKS_RAW_BUCKET"
DEFAULT_RAW_BUCKET = "airbricks-raw"
RAW_ROOT = "raw"
MANIFEST_NAME = "_manifest.json"
#: Airflow partition-key format of each grain (those of StartOfDayMapper / StartOfHourMapper).
KEY_FORMATS: dict[Grain, str] = {"day": "%Y-%m-%d", "hour": "%Y-%m-%dT%H"}
LENGTHS: dict[Grain, datetime.timedelta] = {
    "day": datetime.timedelta(days=1),
    "hour": datetime.timedelta(hours=1),
}

# Hand-written, not strptime: strptime accepts "2026-1-9" and "2026-11-19T5", which would give one
# partition two keys. Names are the ones sources.yaml allows (they are S3 key segments).
#: The names of :meth:`RawPartition.job_parameters` (the bundle jobs declare each one).
JOB_PARAMETER_NAMES = (
    "partition_path",
    "partition_key",
    "partition_date",
    "partition_folder",
    "interval_start",
    "interval_end",
)

_NAME = r"[a-z][a-z0-9_]{0,62}"
_NAME_RE = re.compile(_NAME)
_KEY_RE = re.compile(r"(?P<date>\d{4}-\d{2}-\d{2})(?:T(?P<hour>\d{2}))?")
_PREFIX_RE = re.compile(
    rf"{RAW_ROOT}/(?P<source>{_NAME})/(?P<dataset>{_NAME})/dt=(?P<date>\d{{4}}-\d{{2}}-\d{{2}})/"
    r"(?:hr=(?P<hour>\d{2})/)?"
)
_URI_RE = re.compile(r"s3://(?P<bucket>[^/]+)/(?P<prefix>.*)")


class PartitionError(ValueError):
    """A value cannot be mapped to a raw-zone partition; the message names it."""


def raw_bucket() -> str:
    """The raw-zone bucket: ``$AIRBRICKS_RAW_BUCKET`` or ``airbricks-raw`` (the only default in the repo)."""
    return os.environ.get(RAW_BUCKET_ENV, "").strip() or DEFAULT_RAW_BUCKET


def dataset_uri(bucket: str, source: str, dataset: str) -> str:
    """``s3://<bucket>/raw/<source>/<dataset>``: the dataset's asset URI (one event per partition)."""
    return f"s3://{bucket}/{RAW_ROOT}/{source}/{dataset}"


def _parse_date(date: str, hour: str | None, what: str) -> tuple[datetime.datetime, Grain]:
    try:
        day = datetime.date.fromisoformat(date)
        start = datetime.datetime(day.year, day.month, day.day, int(hour or 0), tzinfo=datetime.UTC)
    except ValueError as exc:
        raise PartitionError(f"{what}: not a real date/hour ({exc})") from None
    return start, "day" if hour is None else "hour"


@dataclass(frozen=True)
class RawPartition:
    """One UTC day (``grain="day"``) or hour (``grain="hour"``) of one raw dataset.

    :param source: source name of ``sources.yaml`` (an S3 key segment).
    :param dataset: dataset name of that source.
    :param start: start of the partition, timezone-aware; stored in UTC. Must be a UTC midnight for a day
        and a whole UTC hour for an hour.
    :param grain: ``"day"`` or ``"hour"``.
    """

    source: str
    dataset: str
    start: datetime.datetime
    grain: Grain = "day"

    def __post_init__(self) -> None:
        for name in ("source", "dataset"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
                raise PartitionError(
                    f"partition {name} {value!r} must match {_NAME} (it is an S3 key segment)"
                )
        if self.grain not in GRAINS:
            raise PartitionError(f"{self._where}: grain {self.grain!r} must be one of {GRAINS}")
        if not isinstance(self.start, datetime.datetime) or self.start.tzinfo is None:
            raise PartitionError(f"{self._where}: start {self.start!r} must be a timezone-aware datetime")
        utc = self.start.astimezone(datetime.UTC)
        # A plain datetime, whatever came in: pendulum's DateTime (Airflow's data intervals) loses the
        # offset in isoformat() after `+ timedelta` with a stdlib tzinfo.
        start = datetime.datetime(
            utc.year,
            utc.month,
            utc.day,
            utc.hour,
            utc.minute,
            utc.second,
            utc.microsecond,
            tzinfo=datetime.UTC,
        )
        aligned = not (start.minute or start.second or start.microsecond) and (
            self.grain == "hour" or not start.hour
        )
        if not aligned:
            unit = "a UTC midnight" if self.grain == "day" else "a whole UTC hour"
            raise PartitionError(
                f"{self._where}: a {self.grain} partition starts at {unit}, not {start.isoformat()}"
            )
        object.__setattr__(self, "start", start)

    @property
    def _where(self) -> str:
        return f"{self.source}/{self.dataset}"

    # -- constructors ----------------------------------------------------------------------------------
    @classmethod
    def for_interval(
        cls, source: str, dataset: str, start: datetime.datetime, end: datetime.datetime
    ) -> RawPartition:
        """The partition of a data interval: exactly one UTC day (from midnight) or one hour (on the hour).

        Any other interval is refused, naming it: two runs would otherwise share a partition and overwrite
        each other, or one partition key would stand for two intervals.
        """
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, datetime.datetime) or value.tzinfo is None:
                raise PartitionError(
                    f"{source}/{dataset}: interval {name} {value!r} must be a timezone-aware datetime"
                )
        start_utc, end_utc = start.astimezone(datetime.UTC), end.astimezone(datetime.UTC)
        interval = f"{start_utc.isoformat()} .. {end_utc.isoformat()}"
        length = end_utc - start_utc
        if length <= datetime.timedelta(0):
            raise PartitionError(
                f"{source}/{dataset}: empty data interval {interval}; ingestion needs a real interval "
                "(schedule with CronDataIntervalTimetable or CronPartitionTimetable)"
            )
        for grain, grain_length in LENGTHS.items():
            if length == grain_length:
                return cls(source, dataset, start_utc, grain)
        kind = "sub-daily" if length < LENGTHS["day"] else "longer-than-daily"
        raise PartitionError(
            f"{source}/{dataset}: {kind} data interval {interval} has no raw partition: an interval must be "
            "one UTC day from midnight (dt=) or one hour starting on the hour (dt=/hr=)"
        )

    @classmethod
    def from_key(cls, source: str, dataset: str, key: str) -> RawPartition:
        """Parse an Airflow partition key, ``YYYY-MM-DD`` (day) or ``YYYY-MM-DDTHH`` (hour)."""
        match = _KEY_RE.fullmatch(key) if isinstance(key, str) else None
        if not match:
            raise PartitionError(
                f"{source}/{dataset}: partition key {key!r} is neither YYYY-MM-DD nor YYYY-MM-DDTHH"
            )
        start, grain = _parse_date(match["date"], match["hour"], f"{source}/{dataset}: partition key {key!r}")
        return cls(source, dataset, start, grain)

    @classmethod
    def from_prefix(cls, prefix: str) -> RawPartition:
        """Parse ``raw/<source>/<dataset>/dt=YYYY-MM-DD/[hr=HH/]`` (the trailing ``/`` may be missing)."""
        text = prefix if not isinstance(prefix, str) or prefix.endswith("/") else prefix + "/"
        match = _PREFIX_RE.fullmatch(text) if isinstance(text, str) else None
        if not match:
            raise PartitionError(
                f"raw partition prefix {prefix!r} is not {RAW_ROOT}/<source>/<dataset>/dt=YYYY-MM-DD/[hr=HH/]"
            )
        start, grain = _parse_date(match["date"], match["hour"], f"raw partition prefix {prefix!r}")
        return cls(match["source"], match["dataset"], start, grain)

    @classmethod
    def from_uri(cls, uri: str, bucket: str | None = None) -> RawPartition:
        """Parse ``s3://<bucket>/raw/<source>/<dataset>/dt=YYYY-MM-DD/[hr=HH/]``.

        :param bucket: when given, the URI must be in this bucket.
        """
        match = _URI_RE.fullmatch(uri) if isinstance(uri, str) else None
        if not match:
            raise PartitionError(f"raw partition URI {uri!r} is not s3://<bucket>/{RAW_ROOT}/...")
        if bucket is not None and match["bucket"] != bucket:
            raise PartitionError(f"raw partition URI {uri!r} is not in the raw bucket {bucket!r}")
        try:
            return cls.from_prefix(match["prefix"])
        except PartitionError:
            raise PartitionError(
                f"raw partition URI {uri!r} is not s3://<bucket>/{RAW_ROOT}/<source>/<dataset>/"
                "dt=YYYY-MM-DD/[hr=HH/]"
            ) from None

    @classmethod
    def from_extra(cls, extra: Any) -> RawPartition:
        """The partition an asset-event extra describes.

        Reads ``source``/``dataset``/``partition_key`` when present (checked against ``partition`` if that
        is there too), else the ``partition`` URI alone (what ingestion emitted before partition keys).
        """
        if not isinstance(extra, dict):
            raise PartitionError(f"asset event extra {extra!r} is not a mapping")
        key, uri = extra.get("partition_key"), extra.get("partition")
        if key:
            missing = [name for name in ("source", "dataset") if not extra.get(name)]
            if missing:
                raise PartitionError(
                    f"asset event extra has partition_key {key!r} but no {' or '.join(missing)}"
                )
            partition = cls.from_key(str(extra["source"]), str(extra["dataset"]), str(key))
            if uri and cls.from_uri(str(uri)) != partition:
                raise PartitionError(
                    f"asset event extra names two partitions: partition_key {key!r} of "
                    f"{partition._where} and partition {uri!r}"
                )
            return partition
        if uri:
            return cls.from_uri(str(uri))
        raise PartitionError(
            f"asset event extra has neither 'partition_key' nor 'partition' (keys: {sorted(extra)})"
        )

    # -- layout ----------------------------------------------------------------------------------------
    @property
    def end(self) -> datetime.datetime:
        return self.start + LENGTHS[self.grain]

    @property
    def key(self) -> str:
        """The Airflow partition key: ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH``."""
        return self.start.strftime(KEY_FORMATS[self.grain])

    @property
    def date(self) -> datetime.date:
        return self.start.date()

    @property
    def hour(self) -> int | None:
        return self.start.hour if self.grain == "hour" else None

    @property
    def relative_prefix(self) -> str:
        """``dt=YYYY-MM-DD/`` or ``dt=YYYY-MM-DD/hr=HH/``."""
        path = f"dt={self.start:%Y-%m-%d}/"
        if self.grain == "hour":
            path += f"hr={self.start:%H}/"
        return path

    @property
    def prefix(self) -> str:
        """``raw/<source>/<dataset>/dt=YYYY-MM-DD/[hr=HH/]``: the S3 key prefix of the partition."""
        return f"{RAW_ROOT}/{self.source}/{self.dataset}/{self.relative_prefix}"

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST_NAME

    def uri(self, bucket: str) -> str:
        """``s3://<bucket>/raw/<source>/<dataset>/dt=.../[hr=../]``."""
        return f"s3://{bucket}/{self.prefix}"

    def asset_uri(self, bucket: str) -> str:
        """The URI of the dataset's asset (:func:`dataset_uri`), on which this partition is one event."""
        return dataset_uri(bucket, self.source, self.dataset)

    # -- wire formats ----------------------------------------------------------------------------------
    def to_extra(self, bucket: str) -> dict[str, str]:
        """The asset-event extra naming this partition (:meth:`from_extra` reads it back)."""
        return {
            "source": self.source,
            "dataset": self.dataset,
            "partition_key": self.key,
            "grain": self.grain,
            "partition": self.uri(bucket),
            "interval_start": self.start.isoformat(),
            "interval_end": self.end.isoformat(),
        }

    def job_parameters(self, bucket: str) -> dict[str, str]:
        """The partition as Databricks job parameters, already parsed (the bundle has no parser of its own).

        ``partition_path`` is the full ``s3://`` URI of the partition; ``partition_folder`` is
        :attr:`relative_prefix`, the folder the bundle writes each lake layer's output under.
        """
        return {
            "partition_path": self.uri(bucket),
            "partition_key": self.key,
            "partition_date": self.date.isoformat(),
            "partition_folder": self.relative_prefix,
            "interval_start": self.start.isoformat(),
            "interval_end": self.end.isoformat(),
        }
