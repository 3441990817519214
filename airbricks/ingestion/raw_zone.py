"""Raw-zone layout and the stage → publish protocol (see docs/INGESTION.md, "Publish protocol").

Final layout::

    raw/<source>/<dataset>/dt=YYYY-MM-DD/[hr=HH/]part-00001.json   pages, byte-exact
    raw/<source>/<dataset>/dt=YYYY-MM-DD/[hr=HH/]_manifest.json    written LAST; readers trust only this

Staging: ``raw/_staging/<source>/<dataset>/dt=.../[hr=../]<sha256(run_id)[:16]>/part-00001.json``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)

MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1
# Staging uploads (and publish copies) in flight at once: bounds memory to this many pages.
UPLOAD_CONCURRENCY = 4
STAGING_ROOT = "raw/_staging"
_DAY = datetime.timedelta(days=1)
_HOUR = datetime.timedelta(hours=1)


class PartitionError(ValueError):
    """The data interval cannot be mapped to a raw-zone partition."""


def part_name(number: int) -> str:
    return f"part-{number:05d}.json"


@dataclass(frozen=True)
class Partition:
    """Where one data interval of one dataset lands.

    The partition is the UTC date of the interval start (``dt=``). Intervals shorter than a day add
    ``hr=HH`` and must start on the hour and last at least an hour; otherwise two runs would share a
    partition and overwrite each other.
    """

    bucket: str
    source: str
    dataset: str
    interval_start: datetime.datetime
    interval_end: datetime.datetime

    def __post_init__(self) -> None:
        for name in ("interval_start", "interval_end"):
            if getattr(self, name).tzinfo is None:
                raise PartitionError(f"{name} must be timezone-aware")
        length = self.interval_end - self.interval_start
        where = f"{self.source}/{self.dataset}"
        if length <= datetime.timedelta(0):
            raise PartitionError(
                f"{where}: empty data interval {self.interval_start.isoformat()} .. "
                f"{self.interval_end.isoformat()}; ingestion needs a real interval "
                "(schedule with CronDataIntervalTimetable)"
            )
        if length < _DAY:
            start = self.start_utc
            if length < _HOUR or start.minute or start.second or start.microsecond:
                raise PartitionError(
                    f"{where}: sub-daily interval {start.isoformat()} .. {self.end_utc.isoformat()} "
                    "must start on the hour and last at least one hour (partitions are dt=/hr=)"
                )

    @property
    def start_utc(self) -> datetime.datetime:
        return self.interval_start.astimezone(datetime.UTC)

    @property
    def end_utc(self) -> datetime.datetime:
        return self.interval_end.astimezone(datetime.UTC)

    @property
    def hourly(self) -> bool:
        return self.interval_end - self.interval_start < _DAY

    @property
    def partition_path(self) -> str:
        path = f"dt={self.start_utc:%Y-%m-%d}/"
        if self.hourly:
            path += f"hr={self.start_utc:%H}/"
        return path

    @property
    def prefix(self) -> str:
        return f"raw/{self.source}/{self.dataset}/{self.partition_path}"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST_NAME

    def part_key(self, number: int) -> str:
        return self.prefix + part_name(number)

    def staging_prefix(self, run_id: str) -> str:
        run_hash = hashlib.sha256(run_id.encode()).hexdigest()[:16]
        return f"{STAGING_ROOT}/{self.source}/{self.dataset}/{self.partition_path}{run_hash}/"


@dataclass(frozen=True)
class PartInfo:
    key: str  # final key
    page: int
    bytes: int
    sha256: str
    records: int
    url: str  # masked request URL


class RawZoneWriter:
    """Stage pages of one run under a run-scoped prefix, then publish them atomically-ish.

    :param s3: a boto3 S3 client (``S3Hook(aws_conn_id).get_conn()`` in Airflow).
    :param partition: target partition.
    :param run_id: Airflow run id; makes the staging prefix run-scoped and is recorded in the manifest.
    """

    def __init__(self, s3: Any, partition: Partition, run_id: str) -> None:
        self.s3 = s3
        self.partition = partition
        self.run_id = run_id
        self.staging = partition.staging_prefix(run_id)
        self.parts: list[PartInfo] = []
        # Uploads and copies overlap with the next page's download: one request at a time leaves both the API
        # and S3 idle most of the time (bench: 0.29x a raw multipart upload). At most UPLOAD_CONCURRENCY pages
        # are in flight, so memory stays bounded by a few pages whatever the interval's size.
        self._pool = ThreadPoolExecutor(max_workers=UPLOAD_CONCURRENCY, thread_name_prefix="raw-zone")
        self._in_flight: deque[Future[Any]] = deque()

    # -- staging ---------------------------------------------------------------------------------------
    def begin(self) -> None:
        """Drop leftovers of an earlier attempt of this same run (a crash can leave staged parts)."""
        self._delete_keys(self._list(self.staging))

    def stage(self, page: int, body: bytes, records: int, url: str) -> PartInfo:
        """Upload one page, byte-exact, to staging; return its checksum and size."""
        if page != len(self.parts) + 1:
            raise ValueError(f"pages must be staged in order: expected {len(self.parts) + 1}, got {page}")
        digest = hashlib.sha256(body).hexdigest()
        if len(self._in_flight) >= UPLOAD_CONCURRENCY:
            self._in_flight.popleft().result()  # raises the upload's error, if any
        self._in_flight.append(
            self._pool.submit(
                self.s3.put_object,
                Bucket=self.partition.bucket,
                Key=self.staging + part_name(page),
                Body=body,
                ContentType="application/json",
                Metadata={"sha256": digest, "records": str(records)},
            )
        )
        info = PartInfo(
            key=self.partition.part_key(page),
            page=page,
            bytes=len(body),
            sha256=digest,
            records=records,
            url=url,
        )
        self.parts.append(info)
        return info

    def flush(self) -> None:
        """Wait until every staged page is uploaded; raises the first upload error."""
        while self._in_flight:
            self._in_flight.popleft().result()

    def abort(self) -> None:
        """Remove staging; never touches the published partition."""
        for upload in self._in_flight:  # let pending uploads finish so none lands after the cleanup
            upload.exception()
        self._in_flight.clear()
        try:
            self._delete_keys(self._list(self.staging))
        except Exception:  # cleanup must not hide the original error
            log.exception("could not clean staging prefix s3://%s/%s", self.partition.bucket, self.staging)
        finally:
            self._pool.shutdown(wait=True)

    # -- publish ---------------------------------------------------------------------------------------
    def publish(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Move staged parts into the partition and write the manifest last. Returns the manifest.

        Order matters: (1) delete the old manifest so readers stop trusting the partition, (2) server-side
        copy staged parts over the final keys, (3) delete final objects that are not part of this run
        (stale parts of a longer earlier run), (4) write the manifest, (5) delete staging.
        A crash between (1) and (4) leaves a partition without manifest, which readers ignore; the rerun
        repairs it.
        """
        if not self.parts:
            raise ValueError("nothing staged: an interval has at least one page")
        bucket = self.partition.bucket
        self.flush()
        self.s3.delete_object(Bucket=bucket, Key=self.partition.manifest_key)
        copies = [
            self._pool.submit(
                self.s3.copy_object,
                Bucket=bucket,
                Key=part.key,
                CopySource={"Bucket": bucket, "Key": self.staging + part_name(part.page)},
                MetadataDirective="COPY",
            )
            for part in self.parts
        ]
        wait(copies)  # all of them, so none is still running when a failure makes the caller abort
        for copy in copies:
            copy.result()
        keep = {part.key for part in self.parts}
        # Direct children only: a daily partition must not delete hr=HH/ sub-partitions of the same day.
        stale = [key for key in self._list(self.partition.prefix, recursive=False) if key not in keep]
        if stale:
            log.info("removing %d stale object(s) from %s", len(stale), self.partition.uri)
        self._delete_keys(stale)
        manifest = self.manifest(extra)
        self.s3.put_object(
            Bucket=bucket,
            Key=self.partition.manifest_key,
            Body=json.dumps(manifest, indent=2, sort_keys=True).encode(),
            ContentType="application/json",
        )
        self.abort()
        return manifest

    def manifest(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        partition = self.partition
        return {
            "manifest_version": MANIFEST_VERSION,
            "source": partition.source,
            "dataset": partition.dataset,
            "bucket": partition.bucket,
            "partition": partition.uri,
            "interval_start": partition.start_utc.isoformat(),
            "interval_end": partition.end_utc.isoformat(),
            "run_id": self.run_id,
            "pages": len(self.parts),
            "records": sum(p.records for p in self.parts),
            "bytes": sum(p.bytes for p in self.parts),
            "parts": [asdict(p) for p in self.parts],
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
            **(extra or {}),
        }

    # -- helpers ---------------------------------------------------------------------------------------
    def _list(self, prefix: str, *, recursive: bool = True) -> list[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        keys: list[str] = []
        options = {} if recursive else {"Delimiter": "/"}
        for result in paginator.paginate(Bucket=self.partition.bucket, Prefix=prefix, **options):
            keys.extend(obj["Key"] for obj in result.get("Contents", []))
        return keys

    def _delete_keys(self, keys: Iterable[str]) -> None:
        batch: list[dict[str, str]] = []
        for key in keys:
            batch.append({"Key": key})
            if len(batch) == 1000:  # DeleteObjects limit
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, batch: list[dict[str, str]]) -> None:
        result = self.s3.delete_objects(
            Bucket=self.partition.bucket, Delete={"Objects": batch, "Quiet": True}
        )
        errors = result.get("Errors") or []
        if errors:
            first = errors[0]
            raise RuntimeError(
                f"could not delete {len(errors)} object(s) in s3://{self.partition.bucket}/, first: "
                f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
            )


def read_manifest(s3: Any, bucket: str, prefix: str) -> dict[str, Any] | None:
    """The manifest of a partition prefix, or ``None`` when the partition is not (fully) published."""
    try:
        body = s3.get_object(Bucket=bucket, Key=prefix.rstrip("/") + "/" + MANIFEST_NAME)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)
