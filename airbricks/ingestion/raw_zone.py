"""Raw-zone layout and the publish protocol (see docs/INGESTION.md, "Publish protocol").

Final layout::

    raw/<source>/<dataset>/dt=YYYY-MM-DD/[hr=HH/]part-00001.json   pages, byte-exact
    raw/<source>/<dataset>/dt=YYYY-MM-DD/[hr=HH/]_manifest.json    written LAST; readers trust only this

Two publish modes, chosen by :meth:`RawZoneWriter.begin` from whether the partition has a manifest:

* **direct** (no manifest: first publication, or an earlier run died before its manifest): pages are
  uploaded straight to their final keys. Readers trust only the manifest, so there is nothing trusted to
  protect, and each byte crosses the network once instead of twice (upload + server-side copy).
* **staged** (a manifest exists: re-run or backfill of a published partition): pages go to a run-scoped
  staging prefix ``raw/_staging/<source>/<dataset>/dt=.../[hr=../]<sha256(run_id)[:16]>/part-00001.json``
  and are copied over the final keys only once every page is in, so a failed re-run leaves the published
  partition exactly as it was.
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

from airbricks.partitions import MANIFEST_NAME, RAW_ROOT, RawPartition

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
#: Page uploads (and publish copies) in flight at once.
UPLOAD_CONCURRENCY = 4
#: Bytes of page uploads in flight at once (a single larger page still goes, alone): with large pages the
#: page count alone would let memory reach UPLOAD_CONCURRENCY * max_page_bytes.
MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024
STAGING_ROOT = f"{RAW_ROOT}/_staging"


def part_name(number: int) -> str:
    return f"part-{number:05d}.json"


def part_key(partition: RawPartition, number: int) -> str:
    """Final key of page ``number`` of ``partition``: ``<partition prefix>part-NNNNN.json``."""
    return partition.prefix + part_name(number)


def staging_prefix(partition: RawPartition, run_id: str) -> str:
    """Run-scoped staging prefix: ``raw/_staging/<source>/<dataset>/dt=.../[hr=../]<run hash>/``."""
    run_hash = hashlib.sha256(run_id.encode()).hexdigest()[:16]
    return f"{STAGING_ROOT}/{partition.source}/{partition.dataset}/{partition.relative_prefix}{run_hash}/"


@dataclass(frozen=True)
class PartInfo:
    key: str  # final key
    page: int
    bytes: int
    sha256: str
    records: int
    url: str  # masked request URL


class RawZoneWriter:
    """Write the pages of one run into a partition and publish them with a manifest written last.

    Call :meth:`begin`, then :meth:`stage` for each page in order, then :meth:`publish`; on any failure call
    :meth:`abort`. ``begin`` picks the mode (see the module docstring): *direct* when the partition has no
    manifest, *staged* when it has one.

    :param s3: a boto3 S3 client (``S3Hook(aws_conn_id).get_conn()`` in Airflow).
    :param bucket: the raw-zone bucket.
    :param partition: target partition.
    :param run_id: Airflow run id; makes the staging prefix run-scoped and is recorded in the manifest.
    """

    def __init__(self, s3: Any, bucket: str, partition: RawPartition, run_id: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.partition = partition
        self.uri = partition.uri(bucket)
        self.run_id = run_id
        self.staging = staging_prefix(partition, run_id)
        self.parts: list[PartInfo] = []
        #: ``True`` when pages go straight to their final keys; decided by :meth:`begin`.
        self.direct: bool | None = None
        # Uploads and copies overlap with the next page's download: one request at a time leaves both the API
        # and S3 idle most of the time (bench: 0.29x a raw multipart upload). At most UPLOAD_CONCURRENCY pages
        # and MAX_IN_FLIGHT_BYTES are in flight, so memory stays bounded whatever the interval's size.
        self._pool = ThreadPoolExecutor(max_workers=UPLOAD_CONCURRENCY, thread_name_prefix="raw-zone")
        self._in_flight: deque[tuple[Future[Any], int]] = deque()  # (upload, page size)
        self._in_flight_bytes = 0

    @property
    def mode(self) -> str:
        """``direct`` or ``staged`` (after :meth:`begin`)."""
        if self.direct is None:
            raise RuntimeError("call begin() first")
        return "direct" if self.direct else "staged"

    # -- writing ---------------------------------------------------------------------------------------
    def begin(self) -> None:
        """Drop leftovers of an earlier attempt of this run (a crash can leave staged parts), pick the mode.

        Staging is cleared in both modes: an attempt that died while publishing in staged mode leaves the
        partition without manifest, so this attempt runs direct, and must not leave that staging behind.
        """
        self._delete_keys(self._list(self.staging))
        self.direct = not self._exists(self.partition.manifest_key)
        log.info(
            "%s: %s publish (%s)",
            self.uri,
            self.mode,
            "no manifest yet: pages go to their final keys"
            if self.direct
            else "already published: pages are staged, the partition changes only once all are in",
        )

    def stage(self, page: int, body: bytes, records: int, url: str, sha256: str | None = None) -> PartInfo:
        """Upload one page, byte-exact (final key in direct mode, staging otherwise); return its checksum.

        :param sha256: hex SHA-256 of ``body`` when the caller already has it (pagination computes it);
            computed here otherwise.
        """
        if self.direct is None:
            raise RuntimeError("call begin() before stage()")
        if page != len(self.parts) + 1:
            raise ValueError(f"pages must be staged in order: expected {len(self.parts) + 1}, got {page}")
        digest = sha256 or hashlib.sha256(body).hexdigest()
        while self._in_flight and (
            len(self._in_flight) >= UPLOAD_CONCURRENCY
            or self._in_flight_bytes + len(body) > MAX_IN_FLIGHT_BYTES
        ):
            self._wait_oldest()  # raises the upload's error, if any
        final_key = part_key(self.partition, page)
        info = PartInfo(key=final_key, page=page, bytes=len(body), sha256=digest, records=records, url=url)
        # Recorded before the upload starts: abort() must also remove a part whose upload failed half-way.
        self.parts.append(info)
        self._in_flight_bytes += len(body)
        self._in_flight.append(
            (
                self._pool.submit(
                    self.s3.put_object,
                    Bucket=self.bucket,
                    Key=final_key if self.direct else self.staging + part_name(page),
                    Body=body,
                    ContentType="application/json",
                    Metadata={"sha256": digest, "records": str(records)},
                ),
                len(body),
            )
        )
        return info

    def flush(self) -> None:
        """Wait until every staged page is uploaded; raises the first upload error."""
        while self._in_flight:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        upload, size = self._in_flight.popleft()
        self._in_flight_bytes -= size
        upload.result()

    def abort(self) -> None:
        """Undo this run's writes after a failure; a published partition is never touched.

        Staged mode: delete staging (the final keys were not written, or the copy failed before the
        manifest was rewritten, which readers already ignore). Direct mode: the partition had no manifest at
        :meth:`begin`, so the parts this run wrote are not trusted by anybody and are deleted too, unless a
        manifest has appeared since (another run of the same interval published, or this run's manifest PUT
        landed although its response was lost): then the partition is left as it is.
        """
        self._drain()
        try:
            if self.direct and self.parts:
                if self._exists(self.partition.manifest_key):
                    log.warning(
                        "%s has a manifest written since this run began; leaving its objects alone",
                        self.uri,
                    )
                else:
                    self._delete_keys(part.key for part in self.parts)
            self._delete_keys(self._list(self.staging))
        except Exception:  # cleanup must not hide the original error
            log.exception("could not clean up the writes of run %r in %s", self.run_id, self.uri)
        finally:
            self._pool.shutdown(wait=True)

    # -- publish ---------------------------------------------------------------------------------------
    def publish(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Make the written parts the partition's content and write the manifest last. Returns the manifest.

        Staged mode, in this order: (1) delete the old manifest so readers stop trusting the partition,
        (2) server-side copy staged parts over the final keys, (3) delete direct children that are not
        part of this run (stale parts of a longer earlier run), (4) write the manifest, (5) delete staging.
        Direct mode: the parts are already in place, so only (3) and (4). A crash before (4) leaves a
        partition without manifest, which readers ignore; the rerun repairs it.
        """
        if not self.parts:
            raise ValueError("nothing staged: an interval has at least one page")
        bucket = self.bucket
        self.flush()
        manifest_key = self.partition.manifest_key
        if self.direct:
            if self._exists(manifest_key):
                raise RuntimeError(
                    f"{self.uri} was published by another run while run {self.run_id!r} was "
                    "writing it; not overwriting its manifest. Do not run two runs of the same interval at "
                    "once; re-run this one to republish."
                )
        else:
            self.s3.delete_object(Bucket=bucket, Key=manifest_key)
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
        keep = {part.key for part in self.parts} | {manifest_key}
        # Direct children only: a daily partition must not delete hr=HH/ sub-partitions of the same day.
        stale = [key for key in self._list(self.partition.prefix, recursive=False) if key not in keep]
        if stale:
            log.info("removing %d stale object(s) from %s", len(stale), self.uri)
        self._delete_keys(stale)
        manifest = self.manifest(extra)
        self.s3.put_object(
            Bucket=bucket,
            Key=manifest_key,
            Body=json.dumps(manifest, indent=2, sort_keys=True).encode(),
            ContentType="application/json",
        )
        if not self.direct:
            self._delete_keys(self._list(self.staging))
        self._pool.shutdown(wait=True)
        return manifest

    def manifest(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        partition = self.partition
        return {
            "manifest_version": MANIFEST_VERSION,
            "source": partition.source,
            "dataset": partition.dataset,
            "bucket": self.bucket,
            "partition": self.uri,
            "partition_key": partition.key,
            "interval_start": partition.start.isoformat(),
            "interval_end": partition.end.isoformat(),
            "run_id": self.run_id,
            "pages": len(self.parts),
            "records": sum(p.records for p in self.parts),
            "bytes": sum(p.bytes for p in self.parts),
            "parts": [asdict(p) for p in self.parts],
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
            **(extra or {}),
        }

    # -- helpers ---------------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Let pending uploads finish (or fail), so none lands after a cleanup."""
        for upload, _ in self._in_flight:
            upload.exception()
        self._in_flight.clear()
        self._in_flight_bytes = 0

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _list(self, prefix: str, *, recursive: bool = True) -> list[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        keys: list[str] = []
        options = {} if recursive else {"Delimiter": "/"}
        for result in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **options):
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
        result = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        errors = result.get("Errors") or []
        if errors:
            first = errors[0]
            raise RuntimeError(
                f"could not delete {len(errors)} object(s) in s3://{self.bucket}/, first: "
                f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
            )


def read_manifest(s3: Any, bucket: str, prefix: str) -> dict[str, Any] | None:
    """The manifest of a partition prefix, or ``None`` when the partition is not (fully) published."""
    try:
        body = s3.get_object(Bucket=bucket, Key=prefix.rstrip("/") + "/" + MANIFEST_NAME)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)
