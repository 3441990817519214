"""The raw-zone asset of a dataset, shared by ingestion (producer) and processing DAGs (consumers).

Names and bucket come from :mod:`airbricks.partitions` (the one layout and the one bucket default).
"""

from __future__ import annotations

from airflow.sdk import Asset

from airbricks.partitions import dataset_uri


def raw_asset(bucket: str, source: str, dataset: str) -> Asset:
    """The :class:`~airflow.sdk.Asset` ``s3://<bucket>/raw/<source>/<dataset>``: one event per partition."""
    return Asset(dataset_uri(bucket, source, dataset))
