"""Ingest one data interval of one dataset: pages → staging → validated publish. No Airflow needed."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airbricks import metrics
from airbricks.ingestion.config import DatasetConfig, HttpPolicy
from airbricks.ingestion.http import ApiClient, ApiEndpoint
from airbricks.ingestion.pagination import iter_pages
from airbricks.ingestion.raw_zone import Partition, RawZoneWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """What one successful interval produced (also the operator's XCom and asset-event extra)."""

    partition: str  # s3://bucket/raw/<source>/<dataset>/dt=.../
    manifest_key: str
    pages: int
    records: int
    bytes: int
    interval_start: str
    interval_end: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "manifest_key": self.manifest_key,
            "pages": self.pages,
            "records": self.records,
            "bytes": self.bytes,
            "interval_start": self.interval_start,
            "interval_end": self.interval_end,
        }


def ingest_interval(
    *,
    source: str,
    dataset: str,
    config: DatasetConfig,
    endpoint: ApiEndpoint,
    http_policy: HttpPolicy,
    s3: Any,
    bucket: str,
    interval_start: datetime.datetime,
    interval_end: datetime.datetime,
    run_id: str,
    query_params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> IngestResult:
    """Fetch every page of the interval, stage each as it arrives, publish only if all pages are valid.

    :param config: the dataset's settings (path, pagination, records_path, required_fields).
    :param endpoint: base URL + auth (from the ``http_<source>`` connection).
    :param http_policy: timeouts, retries, page limits.
    :param s3: boto3 S3 client.
    :param query_params: already-rendered query params; defaults to ``config.query_params`` verbatim.
    :param headers: already-rendered extra headers; defaults to ``config.headers``.
    :param sleep: wait function between HTTP attempts (tests).
    :raises: anything from the API, validation or S3; staging is removed and the published partition
        (if any) is left untouched.
    """
    partition = Partition(bucket, source, dataset, interval_start, interval_end)
    writer = RawZoneWriter(s3, partition, run_id)
    writer.begin()
    client_kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    try:
        with ApiClient(endpoint, http_policy, **client_kwargs) as client:
            for page in iter_pages(client, source, dataset, config, query_params, headers):
                writer.stage(page.number, page.body, page.records, page.url)
                log.info(
                    "%s/%s: staged page %d (%d records, %d bytes)",
                    source,
                    dataset,
                    page.number,
                    page.records,
                    len(page.body),
                )
        manifest = writer.publish()
    except BaseException:
        writer.abort()
        raise
    metrics.record_ingested(source, dataset, records=manifest["records"], bytes_written=manifest["bytes"])
    log.info(
        "%s/%s: published %s (%d pages, %d records, %d bytes)",
        source,
        dataset,
        partition.uri,
        manifest["pages"],
        manifest["records"],
        manifest["bytes"],
    )
    return IngestResult(
        partition=partition.uri,
        manifest_key=partition.manifest_key,
        pages=manifest["pages"],
        records=manifest["records"],
        bytes=manifest["bytes"],
        interval_start=manifest["interval_start"],
        interval_end=manifest["interval_end"],
    )
