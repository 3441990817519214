"""Asset naming for the raw zone, shared by ingestion (producer) and processing DAGs (consumers)."""

from __future__ import annotations

import os

from airflow.sdk import Asset

BUCKET_ENV = "AIRBRICKS_RAW_BUCKET"
DEFAULT_BUCKET = "airbricks-raw"


def raw_bucket() -> str:
    """The raw-zone bucket: ``$AIRBRICKS_RAW_BUCKET`` or ``airbricks-raw``.

    Kept here, not in the pydantic config module, so that consumers (processing DAGs) pay no config import
    when the DAG processor parses them.
    """
    return os.environ.get(BUCKET_ENV, "").strip() or DEFAULT_BUCKET


def raw_asset_uri(bucket: str, source: str, dataset: str) -> str:
    """``s3://<bucket>/raw/<source>/<dataset>``: one asset per dataset, one event per published interval."""
    return f"s3://{bucket}/raw/{source}/{dataset}"


def raw_asset(bucket: str, source: str, dataset: str) -> Asset:
    """The :class:`~airflow.sdk.Asset` a processing DAG schedules on to consume ``<source>/<dataset>``."""
    return Asset(raw_asset_uri(bucket, source, dataset))
