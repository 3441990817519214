"""Asset naming for the raw zone, shared by ingestion (producer) and processing DAGs (consumers)."""

from __future__ import annotations

from airflow.sdk import Asset


def raw_asset_uri(bucket: str, source: str, dataset: str) -> str:
    """``s3://<bucket>/raw/<source>/<dataset>``: one asset per dataset, one event per published interval."""
    return f"s3://{bucket}/raw/{source}/{dataset}"


def raw_asset(bucket: str, source: str, dataset: str) -> Asset:
    """The :class:`~airflow.sdk.Asset` a processing DAG schedules on to consume ``<source>/<dataset>``."""
    return Asset(raw_asset_uri(bucket, source, dataset))
